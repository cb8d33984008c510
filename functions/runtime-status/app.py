"""Runtime status facade (runtime dialect): jobs as the runtime API shows them."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import RuntimeDialect
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.api.runtime import JobView
from backroom.services import services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = dialect_app(RuntimeDialect())


@app.get("/runtime/api/status/jobs/<job_id>")
def get_job(job_id: Annotated[str, Path(min_length=1, max_length=64)], caller: CurrentCaller) -> JobView:
    engine = services().jobs
    job = engine.get(job_id, caller.tenant_id)
    return JobView.of(job, engine.progress(job))


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
