"""Runtime files facade (runtime dialect): uploaded files and share links under /runtime/api/files.

Declared in template.yaml with the rest of the application; its routes arrive with the issue that
builds its dialect's endpoints (see README, "Status").
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import RuntimeDialect
from backroom.api.resolver import dialect_app

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = dialect_app(RuntimeDialect())


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
