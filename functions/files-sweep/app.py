"""Files sweep (scheduled every hour): removes the app's uploads no record referenced within 12 hours.

S3 lifecycle rules count in whole days, so a schedule does it: the core reads the pending-uploads
partitions of the hours past the 12-hour mark (Queries, never a Scan) and deletes each file no
record has taken, conditioned on that.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.tracing import Tracer
from backroom.wiring import core

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict[str, Any]:
    return core().app.files.sweep().model_dump()
