"""The embedded AWS emulator (moto server), or the endpoint that configuration names instead."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

from infra.local import patches

DEFAULT_HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 4566  # LocalStack's port, so both are reached the same way


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
