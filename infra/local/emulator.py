"""The embedded AWS emulator (DynamoDB Local for DynamoDB, moto server for the rest), or the endpoints
that configuration names instead."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.local import dynamodb_local, patches

DEFAULT_HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 4566  # LocalStack's port, so both are reached the same way


@dataclass(frozen=True)
class Endpoints:
    """Where the stack's AWS services answer: `aws` for all of them (None: AWS itself), `dynamodb` for
    DynamoDB alone when another engine serves it (DynamoDB Local). Handed to boto3 the way it reads
    configuration (`env()`: AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB), so that the product, which
    passes no endpoint of its own, reaches each service where configuration says."""

    aws: str | None
    dynamodb: str | None = None

    def of(self, service: str) -> str | None:
        return self.dynamodb if service == "dynamodb" and self.dynamodb else self.aws

    def env(self) -> dict[str, str]:
        found = {"AWS_ENDPOINT_URL": self.aws} if self.aws else {}
        return {**found, **({"AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb} if self.dynamodb else {})}

    @property
    def engine(self) -> str:
        """The DynamoDB engine that answers, in words (benches print it)."""
        if self.dynamodb:
            return f"DynamoDB Local {dynamodb_local.VERSION} on {self.dynamodb}"
        return f"moto server on {self.aws}" if self.aws else "AWS"


def configured_endpoint(env: dict[str, str]) -> str | None:
    """AWS_ENDPOINT_URL, or LocalStack's endpoint when the localstack-client variables name one."""
    if env.get("AWS_ENDPOINT_URL"):
        return env["AWS_ENDPOINT_URL"]
    if env.get("LOCALSTACK_HOST") or env.get("LOCALSTACK_HOSTNAME"):
        from localstack_client.config import get_service_endpoint

        return str(get_service_endpoint("dynamodb"))
    return None


def answers(endpoint: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + "/moto-api/", timeout=timeout):  # noqa: S310 - local URL
            return True
    except urllib.error.HTTPError:
        return True  # something answers HTTP there (LocalStack has no /moto-api/)
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        return sock.connect_ex((host, port)) != 0


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((DEFAULT_HOST, 0))
        return int(sock.getsockname()[1])


def start_moto(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start moto server in a child process and wait until it answers.

    The versions the emulator's patches need are checked here first: the child's output is not
    shown, so its own refusal would read as a mere exit.
    """
    patches.check_versions()
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.moto_server", "-H", host, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ},
    )
    endpoint = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}; is port {port} taken?")
        if answers(endpoint, timeout=0.5):
            return process
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"moto server did not answer on {endpoint} within {timeout:.0f}s")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate a child started here, killing it if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def started(*, fast_start: bool = False) -> Iterator[Endpoints]:
    """moto server and, where it can run, DynamoDB Local on free ports for the block (tests and benches:
    each process its own); moto's DynamoDB where DynamoDB Local cannot (`dynamodb_local.unavailable`)."""
    moto_port, dynamodb_port = free_port(), free_port()
    dynamodb = None if dynamodb_local.unavailable() else dynamodb_local.launch(dynamodb_port, fast_start=fast_start)
    moto = None
    try:
        moto = start_moto(port=moto_port)  # while the JVM starts
        if dynamodb is not None:
            dynamodb_local.wait(dynamodb, f"http://{DEFAULT_HOST}:{dynamodb_port}")
    except BaseException:
        stop(moto)
        stop(dynamodb)
        raise
    try:
        yield Endpoints(
            aws=f"http://{DEFAULT_HOST}:{moto_port}",
            dynamodb=f"http://{DEFAULT_HOST}:{dynamodb_port}" if dynamodb else None,
        )
    finally:
        stop(moto)
        stop(dynamodb)
