"""One small cached factory for AWS clients; the endpoint comes from settings only."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from backroom.config import Settings

_lock = threading.Lock()
_clients: dict[tuple[str, str, str | None], Any] = {}
_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)


def client(service: str, settings: Settings) -> Any:
    """A boto3 client for `service`, created lazily and shared by the process."""
    key = (service, settings.region, settings.endpoint_url)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                found = boto3.session.Session().client(
                    service, region_name=settings.region, endpoint_url=settings.endpoint_url, config=_CONFIG
                )
                _clients[key] = found
    return found


def reset_clients() -> None:
    """Forget cached clients (tests start moto before the first client exists)."""
    with _lock:
        _clients.clear()
