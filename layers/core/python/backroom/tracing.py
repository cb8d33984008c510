"""The functions' tracer: powertools' Tracer, loading the X-Ray SDK only where tracing is on.

powertools' own Tracer imports the X-Ray SDK (about 0.14 s of every cold start) even where tracing
is disabled: POWERTOOLS_TRACE_DISABLED, or outside Lambda (the local stack, the tests). There this
one traces into a provider that records nothing and never loads the SDK; where tracing is on (Lambda
with `Tracing: Active`) it is powertools' Tracer with X-Ray, unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Tracer as PowertoolsTracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


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
