"""Extract facade (gateway dialect): `/gateway/extract/v1/custom-tables/{name}` with equality filters."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.api.dialects import GatewayDialect
from backroom.api.gateway import DEFAULT_PAGE_SIZE, Page, PageInfo, PageNumber, PageSize, extract_filters
from backroom.api.resolver import CurrentCaller, dialect_app
from backroom.config import require
from backroom.observability import http_handler
from backroom.wiring import core

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")
EXTRACT = "GET /gateway/extract/v1/custom-tables/{table}"
app = dialect_app(GatewayDialect(), internal_messages={EXTRACT: "Unable to execute the extract."})


@app.get(
    "/gateway/extract/v1/custom-tables/<table>",
    responses={422: {"description": "A filter names a field the custom table does not have"}},
)
def extract(
    table: Annotated[str, Path(min_length=1, max_length=255)],
    caller: CurrentCaller,
    page: PageNumber = 0,
    size: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[dict]:
    """Rows of a custom table; `field=value` and `filter.field=value` are filters, ANDed; page and size page."""
    filters = extract_filters(app.current_event.raw_event)
    rows, total = core().calcengine.extract(caller, table, filters, page, size)
    return Page[dict](results=rows, page=PageInfo.of(page, size, total))


@http_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
