"""Files sweep (scheduled every hour): removes the app's uploads no record referenced within 12 hours.

S3 lifecycle rules count in whole days, so a schedule does it: the core reads the pending-uploads
partitions of the hours past the 12-hour mark (Queries, never a Scan) and deletes each file no
record has taken, conditioned on that.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.config import require
from backroom.observability import event_handler
from backroom.wiring import core

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")


@event_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict[str, Any]:
    return core().app.files.sweep().model_dump()
