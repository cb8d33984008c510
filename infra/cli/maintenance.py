"""`backroom maintenance on|off|status`: your app's maintenance mode, over `/runtime/api/status/maintenance`
with your (a developer's) token. While it is on, every runtime call answers 503 and only developers log in.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from infra.cli.client import Client

maintenance = typer.Typer(help="Your app's maintenance mode (developers): on, off, status.", no_args_is_help=True)
PATH = "/runtime/api/status/maintenance"
Json = Annotated[bool, typer.Option("--json", help="Print the API's raw answer (JSON).")]


def _cli() -> Any:
    from infra.cli import main  # the CLI's context and printing (main imports this module)

    return main


def _client(ctx: typer.Context) -> Client:
    client: Client = _cli()._ctx(ctx).client()
    return client


def _show(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _cli()._print_json(state)
        return
    said = "in maintenance" if state.get("maintenance") else "not in maintenance"
    by = f" (switched by {state['by']})" if state.get("by") else ""
    _cli()._out().print(f"The app is {said}{by}.", markup=False)


def _switch(ctx: typer.Context, on: bool, as_json: bool) -> None:
    answer = _client(ctx).call("PUT", PATH, dialect="runtime", json_body={"maintenance": on})
    _show(answer.json(), as_json)


@maintenance.command("on")
def maintenance_on(ctx: typer.Context, as_json: Json = False) -> None:
    """Put the app in maintenance: every runtime call answers 503, and only developers log in."""
    _switch(ctx, True, as_json)


@maintenance.command("off")
def maintenance_off(ctx: typer.Context, as_json: Json = False) -> None:
    """Take the app out of maintenance."""
    _switch(ctx, False, as_json)


@maintenance.command("status")
def maintenance_status(ctx: typer.Context, as_json: Json = False) -> None:
    """Whether the app is in maintenance, and who switched it last."""
    _show(_client(ctx).call("GET", PATH, dialect="runtime").json(), as_json)
