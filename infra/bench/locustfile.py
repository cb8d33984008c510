"""Locust's callers for `infra/bench/load.py`, which runs this file headless (`locust -f`), never alone.

Each caller picks its next request among the routes load.py hands over in BENCH_LOAD_ROUTES (JSON:
name, method, path, headers, body and weight, ids and tokens filled in), by weight, with no pause
between requests: 50 callers keep 50 requests in flight. A non-2xx answer counts as an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from locust import HttpUser, constant

ROUTES: list[dict[str, Any]] = json.loads(os.environ.get("BENCH_LOAD_ROUTES", "[]"))


def request(route: dict[str, Any]) -> Callable[[HttpUser], None]:
    def call(user: HttpUser) -> None:
        body = route["body"].encode() if route["body"] is not None else None
        user.client.request(route["method"], route["path"], name=route["name"], headers=route["headers"], data=body)

    call.__name__ = route["name"]
    return call


class Caller(HttpUser):
    wait_time = constant(0)
    tasks = [request(route) for route in ROUTES for _ in range(route["weight"])]  # each as often as its weight
