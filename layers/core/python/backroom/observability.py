"""The functions' logger, tracer and metrics, built once per process, and the decorator each handler wears.

- Logs: powertools' JSON lines; an HTTP function's lines carry API Gateway's request id as `correlation_id`.
- Traces: powertools' Tracer, which imports the X-Ray SDK (about 0.14 s of every cold start) even where
  tracing is disabled: POWERTOOLS_TRACE_DISABLED, or outside Lambda (the local stack, the tests). There
  this one traces into a provider that records nothing and never loads the SDK; where tracing is on
  (Lambda with `Tracing: Active`) it is powertools' Tracer with X-Ray, unchanged.
- Cost: every unit of work (an HTTP request; a queue message, with `message_handler`; else an invocation)
  is measured (`backroom.dynamo.measured`) and at its end reports what DynamoDB's answers say it cost and
  how long it took (`COST_METRICS`: ItemsRead, the engine's ScannedCount, what is paid for; ItemsReturned;
  Read/WriteCapacityUnits; ItemsWritten; Latency in ms): one INFO log line with a `cost` key, which the
  local stack shows with POWERTOOLS_LOG_LEVEL=INFO, and in Lambda one value of each metric.
- Metrics: CloudWatch embedded metrics, in Lambda only and unless POWERTOOLS_METRICS_DISABLED says
  otherwise: `Requests` per route, the cost metrics of each unit of work (dimension `route`, or
  `function` for queues and schedules), and for a queue's batch `ItemsWrittenPerSecond`. Outside Lambda
  nothing is emitted, and nothing warns that nothing was.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools import Tracer as PowertoolsTracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from backroom.dynamo import Cost, measured

Handler = TypeVar("Handler", bound=Callable[[Any, Any], Any])
Record = TypeVar("Record", bound=Callable[..., Any])


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
    """An API Gateway (HTTP API) handler: logs with the request's id, traced, `Requests` counted per route,
    the request one unit of work (`costed`)."""

    @functools.wraps(handler)
    def counted(event: dict[str, Any], context: Any) -> Any:
        route = str(event.get("routeKey") or "unrouted")
        if _EMITTING:
            metrics.add_dimension(name="route", value=route)
            metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        with costed(route=route):
            return handler(event, context)

    return _observed(cast(Handler, counted), correlation_paths.API_GATEWAY_HTTP)


def event_handler(handler: Handler) -> Handler:
    """A handler of queue messages or schedules: logs and traces, the invocation one unit of work (`costed`;
    or each message, where the record handler wears `message_handler`), and how fast it wrote."""

    @functools.wraps(handler)
    def counted(event: dict[str, Any], context: Any) -> Any:
        if _EMITTING:
            metrics.add_dimension(name="function", value=str(getattr(context, "function_name", "local")))
        with costed(function=str(getattr(context, "function_name", "local"))) as work:
            try:
                return handler(event, context)
            finally:
                if _EMITTING:
                    seconds = max(time.perf_counter() - work.started, 1e-3)
                    metrics.add_metric(
                        name="ItemsWrittenPerSecond",
                        unit=MetricUnit.CountPerSecond,
                        value=work.cost.items_written / seconds,
                    )

    return _observed(cast(Handler, counted), None)


def message_handler(handler: Record) -> Record:
    """A batch's record handler (powertools' BatchProcessor): each message, a job's plan or one of its
    chunks, its own unit of work (`costed`), within its function's invocation."""

    @functools.wraps(handler)  # its signature too: the processor passes `lambda_context` if the handler takes it
    def each(record: Any, **kwargs: Any) -> Any:
        with costed(message=str(getattr(record, "message_id", ""))):
            return handler(record, **kwargs)

    return cast(Record, each)


@dataclass
class Work:
    """A unit of work being costed: what its DynamoDB calls cost so far, when it started, and whether
    units within it (a batch's messages) reported their own."""

    cost: Cost
    started: float
    split: bool = False


_WORK: ContextVar[Work | None] = ContextVar("work", default=None)


@contextmanager
def costed(**about: str) -> Iterator[Work]:
    """The block as one unit of work (a request, a queue's message, an invocation): at its end, what it
    cost (`COST_METRICS`: DynamoDB's figures and its latency) is logged, one INFO line with a `cost` key
    and `about` (its route, message or function), and in Lambda emitted, one value of each metric.

    Units nest: an invocation whose messages reported their own (`message_handler`) reports nothing
    more, so that a metric's sum is the function's cost, each value that of one message."""
    outer = _WORK.get()
    with measured() as cost:
        work = Work(cost, time.perf_counter())
        token = _WORK.set(work)
        try:
            yield work
        finally:
            _WORK.reset(token)
            if outer is not None:
                outer.split = True
            if not work.split:
                _report(work, about)


# What a unit of work reports, and how each figure is read from it.
COST_METRICS: dict[str, tuple[MetricUnit, Callable[[Work, float], float]]] = {
    "ItemsRead": (MetricUnit.Count, lambda w, _: w.cost.items_read),
    "ItemsReturned": (MetricUnit.Count, lambda w, _: w.cost.items_returned),
    "ReadCapacityUnits": (MetricUnit.Count, lambda w, _: w.cost.read_units),
    "ItemsWritten": (MetricUnit.Count, lambda w, _: w.cost.items_written),
    "WriteCapacityUnits": (MetricUnit.Count, lambda w, _: w.cost.write_units),
    "Latency": (MetricUnit.Milliseconds, lambda _, ms: ms),
}


def _report(work: Work, about: dict[str, str]) -> None:
    milliseconds = (time.perf_counter() - work.started) * 1000
    figures = {name: round(read(work, milliseconds), 3) for name, (_, read) in COST_METRICS.items()}
    logger.info("cost", extra={"cost": {**about, **figures}})
    if _EMITTING:
        for name, (unit, _) in COST_METRICS.items():
            metrics.add_metric(name=name, unit=unit, value=figures[name])


def _observed(handler: Handler, correlation_id_path: str | None) -> Handler:
    traced = tracer.capture_lambda_handler(handler, capture_response=False)
    emitted = metrics.log_metrics(traced) if _EMITTING else traced
    return cast(
        Handler, logger.inject_lambda_context(emitted, correlation_id_path=correlation_id_path, clear_state=True)
    )
