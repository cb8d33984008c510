"""Integration fixtures: the local stack as a user runs it, in separate processes.

The emulator (DynamoDB Local for DynamoDB, moto server for the rest; moto's DynamoDB where java is
missing), the gateway (`infra.local.run --no-workers`, real handlers over HTTP) and the worker loop
(`infra.local.run --no-gateway`), which a test may kill and start again. Each test process starts its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from backroom import aws
from backroom.config import Settings
from backroom.wiring import Core, build

from infra.local import emulator
from infra.local.provision import function_environment, provision
from infra.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
VISIBILITY = 3  # seconds: a killed worker's chunk comes back quickly


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        sent = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        url = path if path.startswith(("http://", "https://")) else self.base + path  # a link as printed, or a path
        request = urllib.request.Request(url, data=data, method=method, headers=sent)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local URL
                return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def login(self, email: str, password: str) -> str:
        reply = self.call("POST", "/runtime/api/auth/login", body={"email": email, "password": password})
        assert reply.status == 200, reply.body
        return str(reply.json()["token"])


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infra.local.run", *self.args], cwd=ROOT, env=self.env, stdout=out, stderr=out
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up, no finally, as when Lambda's container dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class LocalStack:
    api: Api
    core: Core
    worker: Process
    endpoint: str  # moto server's: S3, SQS, CloudFormation (and DynamoDB where DynamoDB Local cannot run)
    endpoints: emulator.Endpoints


def _wait_for(url: str, timeout: float, proc: Process, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc and proc.proc.poll() is not None:
            raise RuntimeError(f"the gateway exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - local URL
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the gateway did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    logs = tmp_path_factory.mktemp("local")
    with emulator.started(fast_start=True) as endpoints:
        yield from _stack_on(endpoints, logs)


def _stack_on(endpoints: emulator.Endpoints, logs: Path) -> Iterator[LocalStack]:
    with processes(endpoints, logs) as (api, worker, env):
        # The test process reaches the same emulator through the core, as a second client would.
        template = Template.load()
        for key, value in env.items():
            if key.startswith("AWS_"):
                os.environ[key] = value
        stack = provision(boto3.session.Session(region_name="us-east-1"), endpoints, template, visibility=VISIBILITY)
        aws.reset_clients()
        settings = Settings.from_env({**env, **function_environment(template, stack)})
        yield LocalStack(api, build(settings), worker, str(endpoints.aws), endpoints)


@contextmanager
def processes(endpoints: emulator.Endpoints, logs: Path) -> Iterator[tuple[Api, Process, dict[str, str]]]:
    """A stack's gateway and worker processes on the emulator's endpoints: its API, its worker (which a
    test may kill) and their environment; the test process's own environment is left as it is."""
    api_port = emulator.free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK"))},
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        **endpoints.env(),
        "BACKROOM_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "PYTHONPATH": f"{ROOT / 'layers/core/python'}{os.pathsep}{ROOT}",
    }
    gateway = Process(["--no-workers", "--port", str(api_port)], env, logs / "gateway.log")
    worker = Process(["--no-gateway"], env, logs / "worker.log")
    try:
        gateway.start()
        _wait_for(f"http://127.0.0.1:{api_port}/openapi.json", 60, gateway, logs / "gateway.log")
        worker.start()
        yield Api(f"http://127.0.0.1:{api_port}"), worker, env
    finally:
        worker.stop()
        gateway.stop()


@pytest.fixture(scope="session")
def api(local: LocalStack) -> Api:
    return local.api


@pytest.fixture(scope="session")
def dev_token(api: Api) -> str:
    return api.login("dev@demo.local", "demo-dev-password")


# The runtime dialect's demo users, by their `token` header (a module may define its own `dev`, as headers).
@pytest.fixture(scope="session")
def dev(dev_token: str) -> str:
    return dev_token


@pytest.fixture(scope="session")
def user(api: Api) -> str:
    return api.login("user@demo.local", "demo-user-password")


@pytest.fixture(scope="session")
def sub(api: Api) -> str:
    return api.login("sub@demo.local", "demo-sub-password")
