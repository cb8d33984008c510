"""The `backroom` CLI against the local stack, in-process through typer's runner, as a user types it."""

from __future__ import annotations

import csv
import io
import json
import secrets
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from infra.cli.files import INLINE_BYTES
from infra.cli.main import app
from tests.calculations import broken_script
from tests.integration.stack import Api, LocalStack

TENANT = "4a7e0c3b9d2f4e6a8c1b5d7f9e0a2c4b"  # the demo account
PERIOD = 11  # no other test imports sales for it


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg")


@pytest.fixture(scope="module")
def backroom(api: Api, config: Path) -> CliRunner:
    return CliRunner(env={"XDG_CONFIG_HOME": str(config), "BACKROOM_URL": api.base, "BACKROOM_TOKEN": ""})


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def logged_in(backroom: CliRunner, config: Path) -> Path:
    result = run(backroom, "login", "--email", "dev@demo.local", "--password", "demo-dev-password")
    assert result.exit_code == 0, result.output
    return config / "backroom" / "session.json"


def test_login_saves_a_private_token_and_logout_forgets_it(backroom: CliRunner, config: Path, api: Api) -> None:
    wrong = run(backroom, "login", "--email", "dev@demo.local", "--password", "not-it")
    assert wrong.exit_code == 2
    assert "Error (HTTP 401)" in wrong.output and "Traceback" not in wrong.output

    alias = run(
        backroom,
        "login",
        "--email",
        "dev@demo.local",
        "--password",
        "demo-dev-password",
        "--impersonate",
        "user@demo.local",
    )
    assert alias.exit_code == 0, alias.output
    assert "as user@demo.local (impersonated by dev@demo.local)" in alias.output
    saved = config / "backroom" / "session.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    session = json.loads(saved.read_text())["sessions"][api.base]
    assert session["userEmail"] == "user@demo.local" and session["accountId"] == TENANT

    assert "Logged out" in run(backroom, "logout").output
    assert api.base not in json.loads(saved.read_text())["sessions"]
    ended = api.call("GET", "/gateway/errand/v1/errands", headers={"token": session["token"]})
    assert ended.status == 401  # the session ended on the server too
    missing = run(backroom, "tasks", "show", "0" * 30, "--account", TENANT)
    assert missing.exit_code == 2 and "not logged in" in missing.output


def test_a_2000_row_import_watched_to_the_end(backroom: CliRunner, logged_in: Path, tmp_path: Path) -> None:
    # Given a CSV of 2,000 sales (docs/cli.md's session imports 10,000: the same bar, five times longer)
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "participant_eid,period,amount\n" + "".join(f"test_user_{i % 3 + 1},{PERIOD},{i}\n" for i in range(2_000))
    )

    # When it is imported and watched to its end
    result = run(
        backroom,
        "gateway",
        "import",
        str(sales),
        "--type",
        "sales-1",
        "--periods",
        str(PERIOD),
        "--wait",
        "--interval",
        "0.5",
    )

    # Then the bar reaches 100% with the final counts, and the outcome is the errand's last line
    assert result.exit_code == 0, result.output
    assert "Uploaded sales.csv" in result.output
    bar = [line for line in result.output.splitlines() if "rows/s" in line][-1]
    assert "100%" in bar and "2000/2000 rows" in bar and "0 failed" in bar, result.output
    assert "Import finished: 2000 rows imported, no rows rejected" in result.output

    # And an extract sees them all
    extract = run(backroom, "gateway", "extract", "sales", f"period={PERIOD}", "--size", "1", "--json")
    assert extract.exit_code == 0, extract.output
    assert json.loads(extract.stdout)["page"]["totalElements"] == 2_000


def test_a_task_added_started_and_its_output_downloaded(backroom: CliRunner, logged_in: Path, tmp_path: Path) -> None:
    block = secrets.randbelow(6_000) + 2_000  # area codes 200 to 799: never toll-free (8xx)
    numbers = [f"+1{block}{i:06d}" for i in range(3)]
    source = tmp_path / "numbers.csv"
    source.write_text("number,account_id\n" + "".join(f"{n},{TENANT}\n" for n in numbers))

    added = run(backroom, "tasks", "add", "number_management", "add", str(source), "--json")
    assert added.exit_code == 0, added.output
    task = json.loads(added.stdout)["data"]["_read_only"]
    assert task["total_count"] == 3

    started = run(backroom, "tasks", "start", task["id"], "--wait", "--interval", "0.3")
    assert started.exit_code == 0, started.output
    assert "100%" in started.output and "3/3 rows" in started.output
    assert f"task {task['id']} success: 3 rows succeeded, 0 failed" in started.output

    out = tmp_path / "out.csv"
    downloaded = run(backroom, "tasks", "output", task["id"], "-o", str(out))
    assert downloaded.exit_code == 0, downloaded.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["number"] for r in rows] == numbers and all(r["error"] == "" for r in rows)

    shown = run(backroom, "tasks", "show", task["id"])
    assert "success" in shown.output

    again = run(backroom, "tasks", "start", task["id"])
    assert again.exit_code == 2 and "task already started" in again.output and "Traceback" not in again.output


def test_a_failing_job_exits_non_zero_with_its_reason(backroom: CliRunner, logged_in: Path, local: LocalStack) -> None:
    local.core.calcengine.repo.put_calculation(TENANT, broken_script(94, "CLI Broken Script", "sum / 0"))

    result = run(backroom, "gateway", "calc", "94", "--periods", "9", "--wait", "--interval", "0.3")

    assert result.exit_code == 1, result.output
    assert "[FAILED]" in result.output and "Failed" in result.output
    assert "CLI Broken Script failed" in result.output

    # and watching it again later says the same
    errand = next(w for w in result.output.split() if w.isdigit())
    again = run(backroom, "jobs", "watch", errand)
    assert again.exit_code == 1 and "CLI Broken Script failed" in again.output


def test_errors_print_the_apis_message(backroom: CliRunner, logged_in: Path) -> None:
    unknown = run(backroom, "gateway", "extract", "no_such_table")
    assert unknown.exit_code == 2
    assert "Could not find Custom Table with name no_such_table" in unknown.output
    stranger = run(backroom, "gateway", "extract", "test_table_name", "field9=x")
    assert "The following fields do not belong to test_table_name: field9" in stranger.output
    nothing = run(backroom, "jobs", "watch", "f" * 30)
    assert nothing.exit_code == 2 and "no job" in nothing.output


def test_a_runtime_job_watched_by_its_id(backroom: CliRunner, logged_in: Path, api: Api, dev_token: str) -> None:
    browsezoom = "57fd2d65e4b0ce322b0c8665"  # a demo company
    started = api.call(
        "PUT",
        f"/runtime/api/data/companies/{browsezoom}/logSomething?_async=true",
        body={"param1": "a", "param2": "b"},
        headers={"token": dev_token},
    )
    assert started.status == 200, started.body
    job_id = started.json()["jobId"]

    result = run(backroom, "jobs", "watch", job_id, "--interval", "0.3")

    assert result.exit_code == 0, result.output
    assert "100%" in result.output and "1/1 rows" in result.output
    assert f"job {job_id} (Execute action logSomething from entity companies) FINISHED: 1 of 1 records" in result.output


def test_a_redirect_to_another_host_gets_no_token(tmp_path: Path) -> None:
    """A big task CSV comes as a 302 to a presigned S3 URL: the CLI follows it without the token."""
    seen: list[dict[str, str]] = []

    class Storage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"number,error\n+14155550100,\n")

        def log_message(self, *args: object) -> None:
            pass

    storage = ThreadingHTTPServer(("127.0.0.1", 0), Storage)

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{storage.server_port}/presigned?X-Amz-Signature=abc")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    front = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (storage, front):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runner = CliRunner(env={"XDG_CONFIG_HOME": str(tmp_path), "BACKROOM_TOKEN": "secret-token"})
        out = tmp_path / "out.csv"
        result = runner.invoke(
            app,
            [
                "--url",
                f"http://127.0.0.1:{front.server_port}",
                "tasks",
                "output",
                "t" * 30,
                "--account",
                "a",
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        assert out.read_text() == "number,error\n+14155550100,\n"
        assert len(seen) == 1 and "x-auth-token" not in seen[0] and "secret-token" not in str(seen[0])
    finally:
        for server in (storage, front):
            server.shutdown()
            server.server_close()


def test_a_file_above_the_inline_limit_goes_up_presigned_and_comes_down_redirected(
    backroom: CliRunner, logged_in: Path, tmp_path: Path
) -> None:
    # Given a file one byte above what `POST /files` takes in its request (the API answers 400 to it inline)
    big = tmp_path / "big.bin"
    content = bytes(range(256)) * (INLINE_BYTES // 256) + b"!"
    big.write_bytes(content)

    # When the CLI uploads it (asks for a URL, PUTs to S3, completes) and downloads it back
    up = run(backroom, "files", "upload", str(big), "--json")
    assert up.exit_code == 0, up.output
    file_id = json.loads(up.stdout)["fileId"]
    out = tmp_path / "back.bin"
    down = run(backroom, "files", "download", file_id, "-o", str(out))

    # Then the bytes come back whole, through the API's redirect to S3
    assert down.exit_code == 0, down.output
    assert out.read_bytes() == content


def test_a_csv_above_the_inline_limit_is_imported_by_its_id(
    backroom: CliRunner, logged_in: Path, tmp_path: Path, api: Api, dev_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("infra.cli.files.INLINE_BYTES", 16)  # a small CSV takes the big files' way
    tag = secrets.token_hex(4)
    source = tmp_path / "companies.csv"
    source.write_text(f"name,type\ncli-{tag}-1,a\ncli-{tag}-2,b\n")

    result = run(backroom, "data", "import", "companies", str(source), "--wait", "--interval", "0.3")

    assert result.exit_code == 0, result.output
    assert "FINISHED" in result.output
    found = api.call("GET", f"/runtime/api/data/companies?name=like(cli-{tag})", headers={"token": dev_token})
    assert found.json()["total"] == 2


def test_maintenance_on_status_and_off(backroom: CliRunner, logged_in: Path, api: Api, user: str) -> None:
    try:
        on = run(backroom, "maintenance", "on")
        assert on.exit_code == 0, on.output
        assert "The app is in maintenance (switched by dev@demo.local)." in on.output
        assert json.loads(run(backroom, "maintenance", "status", "--json").output)["maintenance"] is True
        assert api.call("GET", "/runtime/api/users/current", headers={"token": user}).status == 503
    finally:
        off = run(backroom, "maintenance", "off")  # whatever happened above: no other test meets a 503
    assert off.exit_code == 0 and "The app is not in maintenance" in off.output, off.output
    assert api.call("GET", "/runtime/api/users/current", headers={"token": user}).status == 200
