"""Runs the real Lambda handlers in this process, each function as a small pool of warm "containers".

A container is its own import of the function's module, so a resolver is never shared by two
concurrent requests, as in Lambda. powertools keeps the request it resolves on its `BaseRouter`
class, one per process, which Lambda may (it runs one request per process at a time) and these
threads may not: `PATCHES` make that state per thread.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from aws_lambda_powertools.event_handler import api_gateway

from infra.local import patches
from infra.local.patches import Patch
from infra.local.template import ROOT, Function

LAYER = ROOT / "layers" / "core" / "python"


class LocalContext:
    """The parts of Lambda's context object that handlers and powertools read."""

    def __init__(self, function: Function) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function.name}"
        self.memory_limit_in_mb = function.memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# powertools keeps the request it resolves on the `BaseRouter` class; these make it one per thread.
# Class-level reads and writes go through a metaclass property, instance reads through a property on
# the class; both read `_requests`. Installed by infra/local/patches.py (see its table).
_requests = threading.local()


def _held(name: str) -> property:
    return property(
        lambda _owner: getattr(_requests, name, None), lambda _owner, value: setattr(_requests, name, value)
    )


def _per_thread_metaclass(metaclass: type) -> type:
    return type("PerThread", (metaclass,), {name: _held(name) for name in _REQUEST_STATE})


_REQUEST_STATE = ("current_event", "lambda_context")
PATCHES = (
    Patch(api_gateway.BaseRouter, "current_event", "annotated attribute", lambda _: _held("current_event")),
    Patch(api_gateway.BaseRouter, "lambda_context", "annotated attribute", lambda _: _held("lambda_context")),
    Patch(api_gateway.BaseRouter, "__class__", "metaclass ABCMeta", _per_thread_metaclass),
)


def _offline_environment(function: Function) -> None:
    """Stand-ins for the variables a stack would resolve (`!Ref MainTable`), where the process has none.

    A handler checks its settings at import; loading it without a stack (its routes for the OpenAPI
    document, tests of its routes) touches no AWS. `make run` exports the resolved values first.
    """
    for key, value in function.environment.items():
        if not isinstance(value, str):
            os.environ.setdefault(key, f"offline-{key.lower()}")


def _load(function: Function, copy: int) -> Callable[[dict[str, Any], Any], Any]:
    _offline_environment(function)
    module_name, _, attr = function.handler.rpartition(".")
    path = Path(function.code_uri) / f"{module_name.replace('.', '/')}.py"
    unique = f"backroom_fn_{function.name}_{copy}"
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"Cannot load handler {function.handler} of {function.name} from {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    return getattr(module, attr)


class FunctionPool:
    def __init__(self, function: Function, size: int = 4) -> None:
        patches.install()
        self.function = function
        self.size = size
        self._idle: queue.LifoQueue[Callable[[dict[str, Any], Any], Any]] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()
        self.module: Any = None

    def _acquire(self) -> Callable[[dict[str, Any], Any], Any]:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._created < self.size:
                self._created += 1
                return _load(self.function, self._created)
        return self._idle.get()

    def invoke(self, event: dict[str, Any]) -> Any:
        handler = self._acquire()
        try:
            return handler(event, LocalContext(self.function))
        finally:
            self._idle.put(handler)

    def app(self) -> Any:
        """The function's powertools resolver (for the OpenAPI document)."""
        if self.module is None:
            handler = self._acquire()
            self.module = sys.modules[handler.__module__]
            self._idle.put(handler)
        return getattr(self.module, "app", None)


def ensure_layer_on_path() -> None:
    """Lambda puts the layer's python/ folder on sys.path; so does the local stack."""
    if str(LAYER) not in sys.path:
        sys.path.insert(0, str(LAYER))
