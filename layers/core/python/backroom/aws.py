"""One small cached factory for AWS clients (where each service answers is configuration's: boto3 reads
AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE> or the profile), and what their errors mean to the core:
a repository turns a client's `ClientError` into the core's `ServiceFailure` (`failures`)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from backroom.config import Settings
from backroom.errors import ServiceFailure

_lock = threading.Lock()
_clients: dict[tuple[str, str], Any] = {}
_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)
# DynamoDB's requests are built by `backroom.dynamo` alone, from typed values, and DynamoDB validates each
# one anyway: botocore's client-side walk of every nested attribute value is skipped (it was about a fifth
# of an import's CPU in the stack's process; a malformed request is DynamoDB's ValidationException instead).
_SKIPS_VALIDATION = {"dynamodb"}
# Presigned S3 URLs are signed with SigV4 in every region (botocore would sign us-east-1's with SigV2, which
# signs neither Content-Length nor If-None-Match: a presigned upload's size and single write rest on them).
_SERVICE_CONFIG = {"s3": Config(signature_version="s3v4")}


def client(service: str, settings: Settings) -> Any:
    """A boto3 client for `service`, created lazily and shared by the process.

    No endpoint is passed: one given here would override a service's own (AWS_ENDPOINT_URL_DYNAMODB, the
    local stack's DynamoDB Local beside moto server for the rest), which boto3 resolves from configuration."""
    key = (service, settings.region)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                config = _CONFIG.merge(Config(parameter_validation=False)) if service in _SKIPS_VALIDATION else _CONFIG
                if service in _SERVICE_CONFIG:
                    config = config.merge(_SERVICE_CONFIG[service])
                found = boto3.session.Session().client(service, region_name=settings.region, config=config)
                _clients[key] = found
    return found


def reset_clients() -> None:
    """Forget cached clients (tests start moto, or change the endpoints, before the first client exists)."""
    with _lock:
        _clients.clear()


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def failure(err: ClientError) -> ServiceFailure:
    """A client's error as the core's `ServiceFailure` (raise it `from err`: the client's stays the cause)."""
    return ServiceFailure(error_code(err), str(err.response.get("Error", {}).get("Message", "")))


@contextmanager
def failures() -> Iterator[None]:
    """Within it, a client's `ClientError` is raised as the core's `ServiceFailure`."""
    try:
        yield
    except ClientError as err:
        raise failure(err) from err


class Translated:
    """A client as a repository holds it: each call raises `ServiceFailure` in place of `ClientError`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.client, name)
        if not callable(found):
            return found

        @functools.wraps(found)
        def call(*args: Any, **kwargs: Any) -> Any:
            with failures():
                return found(*args, **kwargs)

        return call
