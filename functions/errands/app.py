"""Errand facade (gateway dialect): `/gateway/errand/...`."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import GatewayDialect
from backroom.api.gateway import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, ErrandLogView, ErrandView, Page, PageInfo
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.services import services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = dialect_app(GatewayDialect())

PageNumber = Annotated[int, Query(ge=0, le=10_000_000)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
ErrandId = Annotated[int, Path(ge=1, le=999_999_999_999)]


@app.get("/gateway/errand/v1/errands")
def list_errands(caller: CurrentCaller, page: PageNumber = 0, size: PageSize = DEFAULT_PAGE_SIZE) -> Page[ErrandView]:
    jobs, total = services().errands.page(caller.tenant_id, page, size)
    return Page[ErrandView](results=[ErrandView.of(j) for j in jobs], page=PageInfo.of(page, size, total))


@app.get("/gateway/errand/v1/errands/<errand_id>")
def get_errand(errand_id: ErrandId, caller: CurrentCaller) -> ErrandView:
    return ErrandView.of(services().errands.get(caller.tenant_id, errand_id))


@app.get("/gateway/errand/v1/errands/<errand_id>/logs")
def errand_logs(
    errand_id: ErrandId, caller: CurrentCaller, page: PageNumber = 0, size: PageSize = DEFAULT_PAGE_SIZE
) -> Page[ErrandLogView]:
    entries, total = services().errands.logs(caller.tenant_id, errand_id, page, size)
    return Page[ErrandLogView](results=[ErrandLogView.of(e) for e in entries], page=PageInfo.of(page, size, total))


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
