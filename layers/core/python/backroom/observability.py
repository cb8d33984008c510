"""The functions' logger, tracer and metrics, built once per process, and the decorator each handler wears.

- Logs: powertools' JSON lines; an HTTP function's lines carry API Gateway's request id as `correlation_id`.
- Traces: powertools' Tracer, which imports the X-Ray SDK (about 0.14 s of every cold start) even where
  tracing is disabled: POWERTOOLS_TRACE_DISABLED, or outside Lambda (the local stack, the tests). There
  this one traces into a provider that records nothing and never loads the SDK; where tracing is on
  (Lambda with `Tracing: Active`) it is powertools' Tracer with X-Ray, unchanged.
- Metrics: CloudWatch embedded metrics, in Lambda only and unless POWERTOOLS_METRICS_DISABLED says
  otherwise: `Requests` per route, `ItemsRead` and `ItemsWritten` per invocation (the tables' counts,
  `backroom.dynamo.ITEMS`), and for a queue's batch `ItemsWrittenPerSecond`. Outside Lambda nothing is
  emitted, and nothing warns that nothing was.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools import Tracer as PowertoolsTracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

Handler = TypeVar("Handler", bound=Callable[[Any, Any], Any])


class _Unrecorded(BaseSegment):
    """A subsegment that keeps nothing."""

    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(self, exception: BaseException, stack: list[Any], remote: bool = False) -> None:
        return None


class _Untraced(BaseProvider):
    """The provider where tracing is disabled: subsegments that record nothing."""

    @contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield _Unrecorded()

    @asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _Unrecorded()

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Sequence[str]) -> None:
        return None

    def patch_all(self) -> None:
        return None


class Tracer(PowertoolsTracer):
    """powertools' Tracer (same arguments); without the X-Ray SDK where tracing is disabled."""

    def __init__(
        self,
        service: str | None = None,
        disabled: bool | None = None,
        auto_patch: bool | None = None,
        patch_modules: Sequence[str] | None = None,
        provider: BaseProvider | None = None,
    ) -> None:
        off = disabled if disabled is not None else bool(self._is_tracer_disabled())
        if provider is None:
            # Chosen here, not left to powertools, which would keep the first tracer's provider for all.
            provider = _Untraced() if off else self._patch_xray_provider()
        super().__init__(
            service=service, disabled=disabled, auto_patch=auto_patch, patch_modules=patch_modules, provider=provider
        )


logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Lambda sets AWS_LAMBDA_FUNCTION_NAME; the local stack and the tests do not, and emit nothing.
_EMITTING = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and not is_metrics_disabled()


def http_handler(handler: Handler) -> Handler:
    """An API Gateway (HTTP API) handler: logs with the request's id, traced, `Requests` counted per route."""

    @functools.wraps(handler)
    def counted(event: dict[str, Any], context: Any) -> Any:
        before = _items()
        try:
            return handler(event, context)
        finally:
            if _EMITTING:
                metrics.add_dimension(name="route", value=str(event.get("routeKey") or "unrouted"))
                metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
                _add_items(before)

    return _observed(cast(Handler, counted), correlation_paths.API_GATEWAY_HTTP)


def event_handler(handler: Handler) -> Handler:
    """A handler of queue messages or schedules: logs and traces, items read and written, and how fast written."""

    @functools.wraps(handler)
    def counted(event: dict[str, Any], context: Any) -> Any:
        before, started = _items(), time.monotonic()
        try:
            return handler(event, context)
        finally:
            if _EMITTING:
                metrics.add_dimension(name="function", value=str(getattr(context, "function_name", "local")))
                written = _add_items(before)
                seconds = max(time.monotonic() - started, 1e-3)
                metrics.add_metric(
                    name="ItemsWrittenPerSecond", unit=MetricUnit.CountPerSecond, value=written / seconds
                )

    return _observed(cast(Handler, counted), None)


def _observed(handler: Handler, correlation_id_path: str | None) -> Handler:
    traced = tracer.capture_lambda_handler(handler, capture_response=False)
    emitted = metrics.log_metrics(traced) if _EMITTING else traced
    return cast(
        Handler, logger.inject_lambda_context(emitted, correlation_id_path=correlation_id_path, clear_state=True)
    )


def _items() -> tuple[int, int]:
    from backroom.dynamo import ITEMS  # on the first invocation: the module is loaded by then

    return ITEMS.read, ITEMS.written


def _add_items(before: tuple[int, int]) -> int:
    """Adds the items read and written since `before`; the number written."""
    read, written = (now - then for now, then in zip(_items(), before, strict=True))
    metrics.add_metric(name="ItemsRead", unit=MetricUnit.Count, value=read)
    metrics.add_metric(name="ItemsWritten", unit=MetricUnit.Count, value=written)
    return written
