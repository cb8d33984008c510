"""A function deployed without a setting it needs fails at cold start, naming the variable: not at the
first request that would have used it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cold_start(function: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Import the function's module in a fresh interpreter, as Lambda's init does."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BACKROOM_", "AWS_"))}
    base.update(AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    base.update(PYTHONPATH=f"{ROOT / 'functions' / function}{os.pathsep}{ROOT / 'layers' / 'core' / 'python'}")
    base.update(POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_DISABLED="true", **env)
    return subprocess.run(
        [sys.executable, "-c", "import app"],
        cwd=ROOT / "functions" / function,
        env=base,
        capture_output=True,
        text=True,
    )


def test_a_worker_without_its_queue_fails_at_cold_start_naming_it() -> None:
    started = cold_start("worker", BACKROOM_TABLE="t", BACKROOM_BUCKET="b")
    assert started.returncode != 0
    assert "MissingSettings" in started.stderr and "BACKROOM_JOBS_QUEUE_URL" in started.stderr


def test_no_function_starts_without_its_table() -> None:
    started = cold_start("auth")
    assert started.returncode != 0 and "BACKROOM_TABLE" in started.stderr


def test_the_auth_function_needs_only_the_table() -> None:
    assert cold_start("auth", BACKROOM_TABLE="t").returncode == 0
