"""`backroom plan DIR` and `backroom apply DIR`: a tenant's configuration directory against a stack
(docs/config.md). Unlike the other commands, these talk to the stack's table and bucket with the
operator's AWS credentials (the core in this process), not to the HTTP API.

Exit status: 0 done (or nothing to do); 2 an invalid directory, a plan that cannot be applied, or
destructive changes without `--allow-destructive`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from backroom.errors import BackroomError, ServiceFailure
from backroom.wiring import Core
from rich.console import Console
from rich.table import Table

from infra.cli.stack import connect
from infra.tenant.apply import Refused, apply
from infra.tenant.changes import Change, Plan
from infra.tenant.config import ConfigError, TenantConfig, load
from infra.tenant.plan import plan

EXIT_ERROR = 2
_STYLE = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red"), "no change": ("=", "dim")}

Directory = Annotated[Path, typer.Argument(help="The tenant's configuration directory.", exists=True, file_okay=False)]
StackName = Annotated[
    str, typer.Option("--stack", envvar="BACKROOM_STACK", help="The CloudFormation stack to configure.")
]
AsJson = Annotated[bool, typer.Option("--json", help="The plan (and what apply did) as JSON on stdout.")]
Region = Annotated[str | None, typer.Option(help="The stack's region (default: your AWS configuration's).")]
ShowAll = Annotated[bool, typer.Option("--all", help="List the resources with no change too.")]


def plan_command(
    directory: Directory,
    stack: StackName = "backroom-local",
    region: Region = None,
    as_json: AsJson = False,
    show_all: ShowAll = False,
) -> None:
    """Show what `apply` would change in the stack, resource by resource; change nothing."""
    planned = _planned(connect(stack, region=region), _config(directory, as_json), as_json)
    _show(planned, as_json=as_json, show_all=show_all)


def apply_command(
    directory: Directory,
    stack: StackName = "backroom-local",
    region: Region = None,
    allow_destructive: Annotated[
        bool, typer.Option("--allow-destructive", help="Apply changes that lose data or deactivate users.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    as_json: AsJson = False,
    show_all: ShowAll = False,
) -> None:
    """Make the stack what the directory says: plan, ask, apply. Applying twice changes nothing."""
    config = _config(directory, as_json)
    core = connect(stack, region=region)
    planned = _planned(core, config, as_json)
    if not as_json:
        _show(planned, as_json=False, show_all=show_all)
    if not any(s.pending for s in planned.steps):
        if as_json:
            _show(planned, as_json=True, show_all=show_all, notes=[])
        return
    if planned.destructive and not allow_destructive:
        _fail(str(Refused(planned.destructive)), as_json)
    if not yes and (as_json or not typer.confirm("Apply these changes?")):
        _fail("Not applied (give --yes to apply without asking).", as_json)
    try:
        applied = apply(core, config, allow_destructive=allow_destructive)
    except (ConfigError, Refused) as err:  # the stack changed since the plan above
        _fail(str(err), as_json)
    except (BackroomError, ServiceFailure) as err:  # the core refused a step (a data job still running, ...)
        _fail(f"{err} (the steps before it were applied: plan again to see what is left)", as_json)
    if as_json:
        _show(applied.plan, as_json=True, show_all=show_all, notes=applied.notes)
        return
    for note in applied.notes:
        Console().print(note, markup=False)
    Console().print(f"Applied. {applied.plan.summary().removeprefix('Plan: ')}", markup=False)


def _config(directory: Path, as_json: bool) -> TenantConfig:
    try:
        return load(directory)
    except ConfigError as err:
        _fail(str(err), as_json)


def _planned(core: Core, config: TenantConfig, as_json: bool) -> Plan:
    try:
        return plan(core, config)
    except (ConfigError, BackroomError, ServiceFailure) as err:
        _fail(str(err), as_json)


def _show(planned: Plan, *, as_json: bool, show_all: bool, notes: list[str] | None = None) -> None:
    if as_json:
        answer: dict[str, object] = {"changes": [asdict(c) for c in planned.changes], "summary": planned.counts()}
        if notes is not None:
            answer["notes"] = notes
        typer.echo(json.dumps(answer, indent=2))
        return
    console = Console(width=max(120, Console().width))
    shown = [c for c in planned.changes if show_all or c.action != "no change"]
    if shown:
        console.print(_table(shown))
    unchanged = planned.counts()["no change"]
    if unchanged and not show_all:
        console.print(f"{unchanged} resources unchanged (--all lists them).", style="dim", markup=False)
    console.print(planned.summary(), style="bold", markup=False)


def _table(changes: list[Change]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    for c in changes:
        mark, style = _STYLE[c.action]
        detail = c.detail + (f"  [destructive: {c.destructive}]" if c.destructive else "")
        table.add_row(f"[{style}]{mark}[/]", f"[{style}]{c.resource}[/]", detail.replace("[", r"\["))
    return table


def _fail(message: str, as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"error": message}))
    else:
        Console(stderr=True).print(f"Error: {message}", markup=False)
    raise typer.Exit(EXIT_ERROR)
