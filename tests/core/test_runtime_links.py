"""The runtime dialect's links and its view of a job's results (`backroom.api.runtime`): the root of
the request as API Gateway passes it, a file's link built from the root a job kept, and the results'
byte budget that keeps a job's answer below a Lambda's."""

from __future__ import annotations

from typing import Any

import pytest
from backroom.api import runtime
from backroom.api.runtime import JobView, job_reference, runtime_origin
from backroom.jobs.models import Job, JobState

from infra.local.gateway import build_event
from infra.local.template import Template


def aws_event(stage: str, headers: dict[str, str]) -> dict[str, Any]:
    """The parts of an HTTP API (payload 2.0) event the links are built from, as API Gateway sends them."""
    return {
        "headers": headers,
        "requestContext": {"domainName": "abc123.execute-api.eu-west-1.amazonaws.com", "stage": stage},
    }


def test_the_runtime_root_is_the_requests_scheme_domain_and_stage() -> None:
    proto = {"x-forwarded-proto": "https", "host": "abc123.execute-api.eu-west-1.amazonaws.com"}
    assert runtime_origin(aws_event("$default", proto)) == "https://abc123.execute-api.eu-west-1.amazonaws.com/runtime"
    assert runtime_origin(aws_event("prod", proto)) == "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/runtime"
    # the context's domain, not a Host a caller may send, and https unless told plain http
    assert runtime_origin(aws_event("$default", {"Host": "evil.example"})).startswith("https://abc123.")
    # the local gateway passes what API Gateway passes: its host (with its port) and plain http
    route = next(r for r in Template.load().routes() if r.key == "GET /runtime/api/files/{file_id}")
    local = build_event(route, "GET", "/runtime/api/files/x", {}, "", {"host": "127.0.0.1:3999"}, b"", "127.0.0.1")
    assert runtime_origin(local) == "http://127.0.0.1:3999/runtime"
    assert job_reference("5887b6f23b063a0007604fa8") == {
        "jobLink": "/api/status/jobs/5887b6f23b063a0007604fa8",
        "jobId": "5887b6f23b063a0007604fa8",
    }


def job(results: dict[str, Any], params: dict[str, Any]) -> Job:
    return Job(
        id="j1",
        kind="runtime.export_records",
        tenant_id="t",
        account_id="t",
        created_at=1,
        created_by="u",
        label="l",
        type="EXPORT_RECORDS",
        state=JobState.FINISHED,
        params=params,
        results=results,
    )


def test_a_files_link_is_built_from_the_root_the_job_kept_else_the_readers() -> None:
    kept = job({"fileId": "f1", "recordsExported": 3}, {"origin": "https://api.example/runtime", "entity": "x"})
    view = JobView.of(kept, stoppable=False, origin="http://reader:1/runtime")
    assert view.results == {
        "fileLink": "https://api.example/runtime/api/files/f1",
        "fileId": "f1",
        "recordsExported": 3,
    }
    assert view.data == {"entity": "x"}  # the root is the job's own business, never its data
    older = job({"fileLink": "/runtime/api/files/f1", "fileId": "f1"}, {})
    assert JobView.of(older, stoppable=False, origin="http://reader:1/runtime").results == {
        "fileLink": "http://reader:1/runtime/api/files/f1",
        "fileId": "f1",
    }


def test_per_record_results_past_the_byte_budget_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "RESULTS_BYTES", 300)
    entries = {f"{i:024x}": {"status": "ok", "response": {"id": f"{i:024x}", "notes": "n" * 60}} for i in range(10)}
    done = job({}, {})
    done.error = "stopped short"
    shown = JobView.of(done, stoppable=False, origin="o", results={**entries, "error": done.error}).results
    assert 0 < len(shown) - 1 < len(entries) and shown["error"] == "stopped short"
    assert list(shown)[:-1] == list(entries)[: len(shown) - 1]  # the first ones, in order
