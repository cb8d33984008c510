"""Tasks facade (Kazoo dialect): `/v2/tasks` and `/v2/accounts/{ACCOUNT_ID}/tasks...`."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import TasksDialect
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.tasks.catalog import catalog

logger = Logger()
tracer = Tracer()
metrics = Metrics()
dialect = TasksDialect()
app = dialect_app(dialect)


@app.get("/v2/tasks")
def task_help(
    caller: CurrentCaller,
    category: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=128)] = None,
) -> Response[dict]:
    return dialect.envelope(catalog().help(category, action), app.current_event.raw_event)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
