"""The stack a benchmark runs against: its own emulator and `infra.local.run` on free ports, as `make run` does.

DynamoDB is DynamoDB Local where it can run (moto server's otherwise, or with BACKROOM_LOCAL_DYNAMODB=moto,
to compare): `running` prints which engine answered, one line, so that every figure says what it measured.

The bench process also builds the core's services on the same emulator, to fill tables and to time
what the HTTP APIs do not offer. Set BENCH_STACK_LOG to a file name to keep the stack's log there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
from backroom import aws
from backroom.config import Settings
from backroom.wiring import Core, build

from infra.local import emulator
from infra.local.provision import function_environment, provision
from infra.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"  # the demo tenant (infra/demo/tenant/tenant.json)


def call(
    base: str,
    path: str,
    token: str = "",
    body: bytes | None = None,
    *,
    content_type: str = "application/json",
    method: str | None = None,
    timeout: float = 300,
) -> Any:
    """One request to the local API (`method`, or POST when there is a body, else GET), its JSON answer."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    verb = method or ("POST" if body else "GET")
    request = urllib.request.Request(base + path, data=body, method=verb, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - local URL
        return json.loads(response.read())


@dataclass
class Stack:
    base: str  # the API's URL
    token: str  # the demo developer's bearer token
    endpoints: emulator.Endpoints  # where each service answers (`endpoints.of("dynamodb")`)
    core: Core  # the core's services in this process, on the same emulator
    pid: int  # the stack's process (gateway and workers)
    worker_pid: int | None = None  # with `separate_workers`: the workers' own process, as in Lambda


@contextmanager
def running(*, workers: bool, pollers: int = 2, separate_workers: bool = False) -> Iterator[Stack]:
    """Start the emulator and the stack (with `pollers` workers per queue, or none), stop both on exit.

    `separate_workers` runs the workers in a process of their own (`--no-gateway`), so that a bench can
    tell the workers' memory from the gateway's (in Lambda, each function is its own process)."""
    with emulator.started() as endpoints:
        print(f"DynamoDB engine: {endpoints.engine}", flush=True)
        yield from _stack_on(endpoints, workers=workers, pollers=pollers, separate_workers=separate_workers)


def _stack_on(endpoints: emulator.Endpoints, *, workers: bool, pollers: int, separate_workers: bool) -> Iterator[Stack]:
    api_port = emulator.free_port()
    env = {**os.environ, **endpoints.env()}
    env.setdefault("PYTHONPATH", f"{ROOT / 'layers/core/python'}{os.pathsep}{ROOT}")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.setdefault(key, "test")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    command = [sys.executable, "-m", "infra.local.run", "--port", str(api_port), "--pollers", str(pollers)]
    log_name = os.environ.get("BENCH_STACK_LOG")
    log: IO[bytes] | None = open(log_name, "ab") if log_name else None  # noqa: SIM115 - closed below
    worker: subprocess.Popen[bytes] | None = None
    apart = workers and separate_workers
    if apart:
        workers = False
    stack = subprocess.Popen(
        command if workers else [*command, "--no-workers"],
        cwd=ROOT,
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=log or subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                login = json.dumps({"email": "dev@demo.local", "password": "demo-dev-password"}).encode()
                token = call(base, "/runtime/api/auth/login", body=login)["token"]
                break
            except OSError:
                if time.monotonic() > deadline or stack.poll() is not None:
                    raise
                time.sleep(0.5)
        if apart:  # once the gateway has provisioned the stack, as the integration tests start it
            worker = subprocess.Popen(
                [*command, "--no-gateway"],
                cwd=ROOT,
                env=env,
                stdout=log or subprocess.DEVNULL,
                stderr=log or subprocess.DEVNULL,
            )
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        template = Template.load()
        provisioned = provision(boto3.session.Session(region_name="us-east-1"), endpoints, template)
        aws.reset_clients()
        core = build(Settings.from_env({**env, **function_environment(template, provisioned)}))
        yield Stack(
            base=base,
            token=token,
            endpoints=endpoints,
            core=core,
            pid=stack.pid,
            worker_pid=worker.pid if worker else None,
        )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        stack.terminate()
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stack.kill()
        if log is not None:
            log.close()
