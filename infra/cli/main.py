"""`backroom`: drive Backroom's long jobs from a shell, over the HTTP API (local or deployed).

\b
    backroom login --email dev@demo.local
    backroom gateway import sales.csv --type sales-1 --periods 1-3 --wait
    backroom jobs watch 12

The API's URL is `--url`, else $BACKROOM_URL, else the local stack (`make run`). The token of
`backroom login` is kept per URL in $XDG_CONFIG_HOME/backroom/session.json (mode 0600);
$BACKROOM_TOKEN overrides it. Exit status: 0 done, 1 the job failed (or some of its rows did),
2 an error (the API's message is printed), 3 the job was stopped or terminated.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from infra.cli import tenant
from infra.cli.admin import admin
from infra.cli.client import DEFAULT_URL, Client, CliError, forget_session, load_session, save_session
from infra.cli.evolution import evolution
from infra.cli.files import data, files
from infra.cli.maintenance import maintenance
from infra.cli.users import users
from infra.cli.watch import EXIT_OK, ErrandWatcher, RuntimeJobWatcher, Snapshot, TaskWatcher, Watcher, find_job, watch

EXIT_ERROR = 2
# What one upload may carry: API Gateway hands the body to Lambda, whose request payload is at most 6 MB.
MAX_UPLOAD = 6 * 1024 * 1024


class _Reporting(TyperGroup):
    """Every command's CliError (the API's message) is printed as such, with exit status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as err:
            _report(err)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            _err().print("Interrupted: the job (if any) goes on; `backroom jobs watch ID` picks it up again.")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Reporting,
    help=__doc__,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # errors are printed as the API's message, never as a traceback
    rich_markup_mode=None,
)
gateway = typer.Typer(help="Gateway dialect: import files, calculations, batches, extracts.", no_args_is_help=True)
tasks = typer.Typer(help="Tasks dialect: CSV tasks of an account.", no_args_is_help=True)
jobs = typer.Typer(help="Jobs of any dialect.", no_args_is_help=True)
app.add_typer(gateway, name="gateway")
app.add_typer(tasks, name="tasks")
app.add_typer(jobs, name="jobs")
app.add_typer(admin, name="admin")
app.add_typer(users, name="users")
app.add_typer(maintenance, name="maintenance")
app.add_typer(evolution, name="app")
app.add_typer(files, name="files")
app.add_typer(data, name="data")
app.command("plan")(tenant.plan_command)
app.command("apply")(tenant.apply_command)


@dataclass
class Context:
    url: str

    def client(self, *, authenticated: bool = True) -> Client:
        token = os.environ.get("BACKROOM_TOKEN") or None
        if token is None and authenticated:
            session = load_session(self.url)
            token = str(session["token"]) if session and session.get("token") else None
        return Client(self.url, token)

    def account(self, given: str | None) -> str:
        if given:
            return given
        session = load_session(self.url) or {}
        if session.get("accountId"):
            return str(session["accountId"])
        raise CliError("no account: give --account, or log in (the login answer names your account)")


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _ctx(ctx: typer.Context) -> Context:
    found = ctx.find_object(Context)
    if found is None:  # a sub-command invoked on its own (tests)
        found = Context(os.environ.get("BACKROOM_URL") or DEFAULT_URL)
    return found


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="BACKROOM_URL", help="Base URL of the API (the local stack by default).")
    ] = DEFAULT_URL,
) -> None:
    ctx.obj = Context(url.rstrip("/"))


# Session -----------------------------------------------------------------------------------------
@app.command()
def login(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(prompt=True, help="Your email.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, envvar="BACKROOM_PASSWORD", help="Your password.")
    ],
    impersonate: Annotated[
        str | None, typer.Option(help="Log in as this user of your tenant (developers only).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer (token included).")] = False,
) -> None:
    """Log in; the token is saved for this URL, readable only by you."""
    c = _ctx(ctx)
    body: dict[str, Any] = {"email": email, "password": password}
    if impersonate:
        body["emailImpersonatedUser"] = impersonate
    try:
        answer = _login(c, body)
    except CliError as err:
        if err.code != "passwordChangeRequired":
            raise
        # A one-time password (a new user's, a reset's, a bootstrap's): replaced at this login.
        _err().print("Your password is a one-time password: choose a new one (at least 12 characters).")
        body["newPassword"] = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        answer = _login(c, body)
    saved = {
        k: answer.get(k)
        for k in ("token", "accountId", "userEmail", "userName", "adminUserEmail", "app")
        if k in answer
    }
    where = save_session(c.url, saved)
    if as_json:
        _print_json(answer)
        return
    who = answer.get("userEmail")
    if answer.get("adminUserEmail"):
        who = f"{who} (impersonated by {answer['adminUserEmail']})"
    _out().print(f"Logged in to {c.url} as {who}, account {answer.get('accountId')}. Token saved in {where}.")


def _login(c: Context, body: dict[str, Any]) -> Any:
    client = c.client(authenticated=False)
    return client.call("POST", "/runtime/api/auth/login", dialect="runtime", json_body=body, authenticated=False).json()


@app.command()
def logout(ctx: typer.Context) -> None:
    """End the session on the server (`POST /runtime/api/auth/logout`) and forget its token here."""
    c = _ctx(ctx)
    session = load_session(c.url) or {}
    if session.get("token"):
        with suppress(CliError):  # already ended or expired, or the server is away: forgotten here all the same
            Client(c.url, str(session["token"])).call("POST", "/runtime/api/auth/logout", dialect="runtime")
    if forget_session(c.url):
        _out().print(f"Logged out of {c.url}.")
    else:
        _out().print(f"Not logged in to {c.url}.")


# Waiting ------------------------------------------------------------------------------------------
def _wait(watcher: Watcher, interval: float, as_json: bool) -> None:
    snap: Snapshot = watch(watcher, _err(), interval=interval)
    if as_json:
        _print_json(snap.raw)
    else:
        mark = "done" if snap.outcome == EXIT_OK else "FAILED" if snap.outcome == 1 else "stopped"
        _out().print(f"[{mark}] {snap.summary}", markup=False)
    if snap.outcome != EXIT_OK:
        raise typer.Exit(snap.outcome)


Wait = Annotated[bool, typer.Option("--wait", help="Watch the job until it ends (exit status: its outcome).")]
Json = Annotated[bool, typer.Option("--json", help="Print the API's raw answer (JSON).")]
Interval = Annotated[float, typer.Option(min=0.1, help="Seconds between polls while watching.")]
Account = Annotated[str | None, typer.Option(help="Account id (default: the account you logged in with).")]


def _periods(text: str | None) -> list[int] | None:
    """`3`, `1-3` or `1,2,5` as a list of period numbers."""
    if not text:
        return None
    periods: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            periods.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a period, a range like 1-3, or a list like 1,2,5") from None
    return periods


def _errand_started(errand: dict[str, Any], as_json: bool, wait: bool) -> None:
    if as_json and not wait:
        _print_json(errand)
    elif not as_json:
        _out().print(f"Errand {errand.get('id')} ({errand.get('name')}): {errand.get('state')}", markup=False)


# Gateway ------------------------------------------------------------------------------------------
@gateway.command("import")
def gateway_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV to import.")],
    type_id: Annotated[str, typer.Option("--type", help="Import file type id (e.g. sales-1).")],
    periods: Annotated[str | None, typer.Option(help="Period range: 3, 1-3 or 1,2,3.")] = None,
    wait: Wait = False,
    as_json: Json = False,
    interval: Interval = 1.0,
) -> None:
    """Upload a CSV as an import file, then import it as an errand."""
    c = _ctx(ctx)
    period_range = _periods(periods)
    size = file.stat().st_size
    if size > MAX_UPLOAD:
        raise CliError(
            f"{file.name} is {size:,} bytes; the API takes at most {MAX_UPLOAD:,} per upload "
            "(Lambda's request payload) and offers no presigned upload for import files: split the file"
        )
    client = c.client()
    uploaded = client.call(
        "POST",
        "/gateway/import/v1/files",
        dialect="gateway",
        query=[("name", file.name)],
        data=file.read_bytes(),
        content_type="text/csv",
    ).json()
    if not as_json:
        _out().print(f"Uploaded {file.name} ({size:,} bytes) as import file {uploaded.get('id')}.", markup=False)
    body: dict[str, Any] = {"importFileId": uploaded["id"], "importFileTypeId": type_id}
    if period_range:
        body["periodRange"] = period_range
    errand = client.call("POST", "/gateway/errand/v1/imports/file", dialect="gateway", json_body=body).json()
    _errand_started(errand, as_json, wait)
    if wait:
        _wait(ErrandWatcher(client, str(errand["id"])), interval, as_json)


def _run_errand(
    ctx: typer.Context, path: str, body: dict[str, Any], wait: bool, as_json: bool, interval: float
) -> None:
    client = _ctx(ctx).client()
    errand = client.call("POST", path, dialect="gateway", json_body=body).json()
    _errand_started(errand, as_json, wait)
    if wait:
        _wait(ErrandWatcher(client, str(errand["id"])), interval, as_json)


Participants = Annotated[
    str | None, typer.Option(help="Participant EIDs, comma-separated (default: every active participant).")
]


@gateway.command("calc")
def gateway_calc(
    ctx: typer.Context,
    calculation_id: Annotated[int, typer.Argument(help="Calculation id.")],
    periods: Annotated[str | None, typer.Option(help="Period range (default: the current period).")] = None,
    participants: Participants = None,
    wait: Wait = False,
    as_json: Json = False,
    interval: Interval = 1.0,
) -> None:
    """Run a calculation (errand v2)."""
    body = _scoped({"calculationId": calculation_id}, periods, participants)
    _run_errand(ctx, "/gateway/errand/v2/calculations", body, wait, as_json, interval)


@gateway.command("batch")
def gateway_batch(
    ctx: typer.Context,
    batch_id: Annotated[int, typer.Argument(help="Batch id.")],
    periods: Annotated[str | None, typer.Option(help="Period range (default: the current period).")] = None,
    participants: Participants = None,
    wait: Wait = False,
    as_json: Json = False,
    interval: Interval = 1.0,
) -> None:
    """Run a batch of calculations (errand v2)."""
    body = _scoped({"batchId": batch_id}, periods, participants)
    _run_errand(ctx, "/gateway/errand/v2/batches", body, wait, as_json, interval)


def _scoped(body: dict[str, Any], periods: str | None, participants: str | None) -> dict[str, Any]:
    """A v2 errand's body with its optional scope: the periods and the participants given."""
    if _periods(periods):
        body["periodRange"] = _periods(periods)
    if participants:
        body["participantEids"] = [p.strip() for p in participants.split(",") if p.strip()]
    return body


EXTRACT_PAGE = 2000  # the Extract API's largest page


@gateway.command("extract")
def gateway_extract(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="Custom table's database name.")],
    filters: Annotated[list[str] | None, typer.Argument(help="field=value filters (ANDed).")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Every matching row, as CSV on stdout.")] = False,
    page: Annotated[int, typer.Option(min=0, help="Page to show (without --csv).")] = 0,
    size: Annotated[int, typer.Option(min=1, max=EXTRACT_PAGE, help="Rows per page (without --csv).")] = 20,
    as_json: Json = False,
) -> None:
    """Extract rows of a custom table, filtered by field=value."""
    query: list[tuple[str, str]] = []
    for item in filters or []:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise typer.BadParameter(f"{item!r} is not field=value")
        query.append((f"filter.{field}", value))  # the filter form that names any field, even `page` or `size`
    client = _ctx(ctx).client()
    path = f"/gateway/extract/v1/custom-tables/{_segment(table)}"
    if not as_csv:
        answer = client.call("GET", path, dialect="gateway", query=[*query, ("page", str(page)), ("size", str(size))])
        data = answer.json()
        if as_json:
            _print_json(data)
            return
        rows = data.get("results", [])
        info = data.get("page", {})
        shown = Table(show_lines=False)
        for column in rows[0].keys() if rows else []:
            shown.add_column(str(column))
        for row in rows:
            shown.add_row(*("" if v is None else str(v) for v in row.values()))
        console = _out()
        console.print(shown)
        console.print(
            f"page {page} of {info.get('totalPages', 0)} page(s); {info.get('totalElements', 0)} matching rows"
            + ("; more: --page " + str(page + 1) if info.get("hasNext") else "")
        )
        return
    writer: Any = None
    number = 0
    while True:
        data = client.call(
            "GET", path, dialect="gateway", query=[*query, ("page", str(number)), ("size", str(EXTRACT_PAGE))]
        ).json()
        for row in data.get("results", []):
            if writer is None:
                writer = csv.DictWriter(sys.stdout, fieldnames=list(row.keys()), lineterminator="\n")
                writer.writeheader()
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        if not data.get("page", {}).get("hasNext"):
            break
        number += 1


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


# Tasks --------------------------------------------------------------------------------------------
def _task_of(answer: dict[str, Any]) -> dict[str, Any]:
    data = answer.get("data") or {}
    found: dict[str, Any] = data.get("_read_only") or data
    return found


@tasks.command("add")
def tasks_add(
    ctx: typer.Context,
    category: Annotated[str, typer.Argument(help="Task category (e.g. number_management).")],
    action: Annotated[str, typer.Argument(help="Task action (e.g. add).")],
    file: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV input, if the action takes one."),
    ] = None,
    account: Account = None,
    start: Annotated[bool, typer.Option("--start", help="Start it at once.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Start it and watch it until it ends.")] = False,
    as_json: Json = False,
    interval: Interval = 1.0,
) -> None:
    """Create a task from a CSV (it starts with `tasks start`, or --start / --wait)."""
    c = _ctx(ctx)
    acc = c.account(account)
    query = [("category", category), ("action", action)]
    data: bytes | None = None
    if file is not None:
        if file.stat().st_size > MAX_UPLOAD:
            raise CliError(f"{file.name} is larger than the {MAX_UPLOAD:,} bytes one request may carry")
        query.append(("file_name", file.name))
        data = file.read_bytes()
    client = c.client()
    answer = client.call(
        "PUT",
        f"/v2/accounts/{_segment(acc)}/tasks",
        dialect="tasks",
        query=query,
        data=data,
        content_type="text/csv" if data is not None else None,
    ).json()
    task = _task_of(answer)
    if as_json and not (start or wait):
        _print_json(answer)
    elif not as_json:
        rows = f", {task.get('total_count')} rows" if task.get("total_count") is not None else ""
        _out().print(f"Task {task.get('id')} created ({category}/{action}{rows}).", markup=False)
    if start or wait:
        _start_task(client, acc, str(task["id"]), wait, as_json, interval)
    elif not as_json:
        _out().print(f"Start it with: backroom tasks start {task.get('id')}", markup=False)


def _start_task(client: Client, account: str, task_id: str, wait: bool, as_json: bool, interval: float) -> None:
    answer = client.call("PATCH", f"/v2/accounts/{_segment(account)}/tasks/{_segment(task_id)}", dialect="tasks").json()
    if as_json and not wait:
        _print_json(answer)
    elif not as_json:
        _out().print(f"Task {task_id}: {_task_of(answer).get('status')}", markup=False)
    if wait:
        _wait(TaskWatcher(client, account, task_id), interval, as_json)


@tasks.command("start")
def tasks_start(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    account: Account = None,
    wait: Wait = False,
    as_json: Json = False,
    interval: Interval = 1.0,
) -> None:
    """Start a task."""
    c = _ctx(ctx)
    _start_task(c.client(), c.account(account), task_id, wait, as_json, interval)


@tasks.command("stop")
def tasks_stop(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    account: Account = None,
    as_json: Json = False,
) -> None:
    """Stop a running task (it cannot be started again)."""
    c = _ctx(ctx)
    path = f"/v2/accounts/{_segment(c.account(account))}/tasks/{_segment(task_id)}/stop"
    answer = c.client().call("PATCH", path, dialect="tasks").json()
    if as_json:
        _print_json(answer)
    else:
        _out().print(f"Task {task_id}: {_task_of(answer).get('status')}", markup=False)


@tasks.command("show")
def tasks_show(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    account: Account = None,
    as_json: Json = False,
) -> None:
    """Show a task: status, counters, CSVs."""
    c = _ctx(ctx)
    answer = (
        c.client()
        .call("GET", f"/v2/accounts/{_segment(c.account(account))}/tasks/{_segment(task_id)}", dialect="tasks")
        .json()
    )
    if as_json:
        _print_json(answer)
        return
    shown = Table(show_header=False)
    for key, value in _task_of(answer).items():
        shown.add_row(str(key), json.dumps(value) if isinstance(value, list | dict) else str(value))
    _out().print(shown)


@tasks.command("output")
def tasks_output(
    ctx: typer.Context,
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    account: Account = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")] = None,
    input_csv: Annotated[bool, typer.Option("--input", help="The task's input CSV instead.")] = False,
) -> None:
    """Download a task's output CSV (or its input); a big one comes through a presigned URL."""
    c = _ctx(ctx)
    which = "input" if input_csv else "output"
    path = f"/v2/accounts/{_segment(c.account(account))}/tasks/{_segment(task_id)}/{which}"
    _emit(c.client().call("GET", path, dialect="tasks", accept="text/csv").body, output)


def _emit(body: bytes, output: Path | None) -> None:
    """A download's bytes to `output`, or to stdout."""
    if output is None:
        if hasattr(sys.stdout, "buffer"):
            sys.stdout.buffer.write(body)
        else:  # a stream without bytes (an embedding's capture)
            sys.stdout.write(body.decode("utf-8", "replace"))
        sys.stdout.flush()
    else:
        output.write_bytes(body)
        _err().print(f"Wrote {len(body):,} bytes to {output}")


# Jobs ---------------------------------------------------------------------------------------------
@jobs.command("watch")
def jobs_watch(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="An errand number, a task id or a runtime job id.")],
    kind: Annotated[str, typer.Option(help="auto, errand, task or job (runtime).")] = "auto",
    account: Account = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job's last answer (JSON) at the end.")] = False,
    interval: Interval = 1.0,
) -> None:
    """Watch a job of any dialect to its end: a progress bar, then its outcome (the exit status)."""
    c = _ctx(ctx)
    client = c.client()
    watcher: Watcher
    if kind == "errand":
        watcher = ErrandWatcher(client, job_id)
    elif kind == "task":
        watcher = TaskWatcher(client, c.account(account), job_id)
    elif kind in ("job", "runtime"):
        watcher = RuntimeJobWatcher(client, job_id)
    elif kind == "auto":
        known = account or (load_session(c.url) or {}).get("accountId")
        watcher = find_job(client, job_id, str(known) if known else None)
    else:
        raise typer.BadParameter(f"{kind!r}: use auto, errand, task or job")
    _wait(watcher, interval, as_json)


def run() -> None:
    """The console script `backroom`."""
    app()


def _report(err: CliError) -> None:
    console = _err()
    status = f" (HTTP {err.status})" if err.status else ""
    console.print(f"Error{status}: {err.message}", markup=False)
    for detail in err.details:
        console.print(f"  {detail}", markup=False)
