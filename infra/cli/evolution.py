"""`backroom app jobs|watch|stop|resume|cancel`: the data jobs of an app's changes (docs/evolution.md).

`backroom apply` starts them and does not wait. They are not runtime jobs (the API's `/status/jobs`
does not list them), so, like `plan` and `apply`, these commands reach the stack's table with the
operator's AWS credentials (`--stack`), not the HTTP API. Exit status: 0 done; 1 the watched job
failed; 2 an error; 3 it was stopped or cancelled.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from backroom.errors import BackroomError
from backroom.jobs.models import Job, JobState
from backroom.wiring import Core
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.cli.client import CliError
from infra.cli.stack import connect

evolution = typer.Typer(help="The data jobs of an app's changes (index builds, unique checks, ...).")

StackName = Annotated[str, typer.Option("--stack", envvar="BACKROOM_STACK", help="The CloudFormation stack.")]
Tenant = Annotated[str, typer.Option("--tenant", envvar="BACKROOM_TENANT", help="The tenant's id (its root account).")]
JobId = Annotated[str, typer.Argument(help="The job's id (`backroom app jobs` lists them).")]
Region = Annotated[str | None, typer.Option(help="The stack's region (default: your AWS configuration's).")]
_ENDED = {JobState.FINISHED: 0, JobState.FAILED: 1, JobState.STOPPED: 3, JobState.CANCELED: 3}


def _describe(job: Job) -> str:
    entity = job.params.get("entity", "?")
    line = f"{job.id}  {entity}  {job.state.value}  {job.processed:,}/{job.total_rows:,} records"
    return line + (f"  {job.error}" if job.error else "")


def _job(core: Core, tenant: str, job_id: str) -> Job:
    try:
        job = core.jobs.get(job_id, tenant)
    except BackroomError as err:
        raise CliError(err.message) from None
    if job.kind != "app.evolve":  # another kind of job: its own dialect steers it
        raise CliError(f"Job {job_id} is not a data job of an app's change")
    return job


@evolution.command("jobs")
def list_jobs(tenant: Tenant, stack: StackName = "backroom-local", region: Region = None) -> None:
    """The tenant's latest data jobs, newest first."""
    table = Table("job", "entity", "state", "records", "error", box=None)
    for job in connect(stack, region=region).evolution.jobs_of(tenant):
        progress = f"{job.processed:,}/{job.total_rows:,}"
        table.add_row(job.id, str(job.params.get("entity", "")), job.state.value, progress, job.error or "")
    Console().print(table)


@evolution.command("watch")
def watch_job(
    job_id: JobId,
    tenant: Tenant,
    stack: StackName = "backroom-local",
    region: Region = None,
    interval: Annotated[float, typer.Option(help="Seconds between two reads of the job.")] = 1.0,
) -> None:
    """Follow a data job to its end: a bar of records rewritten, then its outcome."""
    core = connect(stack, region=region)
    job = _job(core, tenant, job_id)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(str(job.params.get("entity", job_id)), total=job.total_rows or None)
        while job.state not in _ENDED:
            bar.update(task, completed=job.processed, total=job.total_rows or None)
            time.sleep(interval)
            job = _job(core, tenant, job_id)
        bar.update(task, completed=job.processed, total=job.total_rows or None)
    Console().print(_describe(job), markup=False)
    raise typer.Exit(_ENDED[job.state])


def _command(name: str, doc: str) -> None:
    def run(job_id: JobId, tenant: Tenant, stack: StackName = "backroom-local", region: Region = None) -> None:
        core = connect(stack, region=region)
        _job(core, tenant, job_id)
        try:
            job = getattr(core.jobs, name)(job_id, tenant)
        except BackroomError as err:
            raise CliError(err.message) from None
        Console().print(_describe(job), markup=False)

    run.__doc__ = doc
    evolution.command(name)(run)


_command("stop", "Stop a data job after its chunks in flight; `resume` goes on where it stopped.")
_command("resume", "Resume a stopped data job.")
_command("cancel", "Cancel a data job: what it did stays, the rest is not done (an index stays `building`).")
