"""`backroom users ...`: the users of your tenant, over `/runtime/api/users` with your (a developer's) token.

A user is named by its id or its e-mail (looked up in the listing). A one-time password (`add`,
`reset-password`) is printed once, on stdout; none is ever taken on the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from infra.cli.client import Client, CliError

users = typer.Typer(help="Users of your tenant (developers): list, add, change, deactivate.", no_args_is_help=True)
PATH = "/runtime/api/users"
PAGE = 1000  # the API's largest page

Who = Annotated[str, typer.Argument(help="The user's id, or its e-mail.")]
Json = Annotated[bool, typer.Option("--json", help="Print the API's raw answer (JSON).")]
Groups = Annotated[
    list[str] | None, typer.Option("--group", help="A group of the app the user belongs to (repeat for more).")
]


def _cli() -> Any:
    from infra.cli import main  # the CLI's context and printing (main imports this module)

    return main


def _client(ctx: typer.Context) -> Client:
    client: Client = _cli()._ctx(ctx).client()
    return client


def _call(client: Client, method: str, path: str, **kw: Any) -> Any:
    return client.call(method, path, dialect="runtime", **kw).json()


def _every(client: Client) -> Iterator[dict[str, Any]]:
    """Every user of the tenant, a page of the API's largest at a time."""
    offset: int | None = 0
    while offset is not None:
        page = _call(client, "GET", PATH, query=[("_size", str(PAGE)), ("_offset", str(offset))])
        yield from page.get("items", [])
        offset = page.get("offset")


def _id_of(client: Client, who: str) -> str:
    """The id of the user `who` names: an id as it is, an e-mail found in the listing."""
    if "@" not in who:
        return quote(who, safe="")
    found = next((u for u in _every(client) if u.get("email") == who.strip().lower()), None)
    if found is None:
        raise CliError(f"no user {who} in your tenant")
    return quote(str(found["id"]), safe="")


def _show(user: dict[str, Any], as_json: bool) -> None:
    main = _cli()
    if as_json:
        main._print_json(user)
        return
    shown = Table(show_header=False)
    for key, value in user.items():
        shown.add_row(str(key), ", ".join(value) if isinstance(value, list) else str(value))
    main._out().print(shown)


def _password(password: str, who: str) -> None:
    _cli()._out().print(
        f"One-time password of {who} (shown once; the first login must replace it): {password}", markup=False
    )


@users.command("list")
def users_list(ctx: typer.Context, as_json: Json = False) -> None:
    """Every user of your tenant, by e-mail."""
    found = list(_every(_client(ctx)))
    if as_json:
        _cli()._print_json(found)
        return
    out = _cli()._out()
    for user in found:  # a line a user (a table would cut e-mails to the terminal's width)
        state = "active" if user.get("active") else "deactivated"
        groups = ",".join(user.get("groups", [])) or "-"
        out.print(f"{user['id']}  {user['email']}  {user['role']}  {groups}  {state}  {user['name']}", markup=False)


@users.command("add")
def users_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The new user's e-mail.")],
    name: Annotated[str, typer.Option(help="The user's name.")],
    role: Annotated[str, typer.Option(help="user or developer.")] = "user",
    group: Groups = None,
    account: Annotated[str | None, typer.Option(help="Its account (default: yours).")] = None,
    as_json: Json = False,
) -> None:
    """Add a user; its one-time password is printed once (its first login must replace it)."""
    body: dict[str, Any] = {"email": email, "name": name, "role": role, "groups": group or []}
    if account:
        body["account"] = account
    made = _call(_client(ctx), "POST", PATH, json_body=body)
    if as_json:
        _cli()._print_json(made)
        return
    _cli()._out().print(f"User {made['email']} added (id {made['id']}).", markup=False)
    _password(made["password"], made["email"])


@users.command("show")
def users_show(ctx: typer.Context, who: Who, as_json: Json = False) -> None:
    """Show a user."""
    client = _client(ctx)
    _show(_call(client, "GET", f"{PATH}/{_id_of(client, who)}"), as_json)


@users.command("update")
def users_update(
    ctx: typer.Context,
    who: Who,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    role: Annotated[str | None, typer.Option(help="user or developer.")] = None,
    group: Groups = None,
    no_groups: Annotated[bool, typer.Option("--no-groups", help="The user belongs to no group.")] = False,
    as_json: Json = False,
) -> None:
    """Change a user's name, role or groups (`--group` lists all of them)."""
    body: dict[str, Any] = {k: v for k, v in (("name", name), ("role", role)) if v is not None}
    if group or no_groups:
        body["groups"] = [] if no_groups else group
    if not body:
        raise typer.BadParameter("nothing to change: give --name, --role, --group or --no-groups")
    client = _client(ctx)
    _show(_call(client, "PUT", f"{PATH}/{_id_of(client, who)}", json_body=body), as_json)


def _state(ctx: typer.Context, who: str, verb: str, as_json: bool) -> None:
    client = _client(ctx)
    user = _call(client, "PUT", f"{PATH}/{_id_of(client, who)}/{verb}")
    if as_json:
        _cli()._print_json(user)
    else:
        _cli()._out().print(f"User {user['email']}: {'active' if user['active'] else 'deactivated'}.", markup=False)


@users.command("deactivate")
def users_deactivate(ctx: typer.Context, who: Who, as_json: Json = False) -> None:
    """The user cannot log in any more (its sessions end); it keeps its data."""
    _state(ctx, who, "deactivate", as_json)


@users.command("reactivate")
def users_reactivate(ctx: typer.Context, who: Who, as_json: Json = False) -> None:
    """The user may log in again."""
    _state(ctx, who, "reactivate", as_json)


@users.command("reset-password")
def users_reset_password(ctx: typer.Context, who: Who, as_json: Json = False) -> None:
    """A new one-time password for the user, printed once (its sessions end)."""
    client = _client(ctx)
    answer = _call(client, "POST", f"{PATH}/{_id_of(client, who)}/resetPassword")
    if as_json:
        _cli()._print_json(answer)
    else:
        _password(answer["password"], who)
