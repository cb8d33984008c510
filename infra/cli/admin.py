"""`backroom admin`: what an operator does with AWS credentials for the account, not over the HTTP API.

`backroom admin bootstrap` creates the first tenant of a stack and its first developer, on the stack's
own table (read from its CloudFormation outputs, `--stack NAME`): before it, nobody can log in. The
password never passes on a command line, where the shell history and `ps` would keep it: it is read
from a file, or generated and printed once.
"""

from __future__ import annotations

import re
import secrets
import string
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from infra.cli.client import CliError

if TYPE_CHECKING:  # the core and boto3 are imported when a command runs: not on every `backroom` (0.4 s)
    from backroom.identity.models import User
    from backroom.wiring import Core

admin = typer.Typer(help="Operator commands, on a stack's resources with your AWS credentials.", no_args_is_help=True)

# A generated password: 24 letters and digits (about 143 bits), nothing a terminal or a paste mangles.
GENERATED_LENGTH = 24
_ALPHABET = string.ascii_letters + string.digits
# A tenant id is a key's part and a path's segment (`/v2/accounts/{id}`): plain characters, at most 64.
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def generate_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_LENGTH))


def read_password(path: Path) -> str:
    """The first line of `path`, stripped; refused when empty or short (the rule of `passwordFile` too)."""
    from infra.tenant.config import ConfigError, password_in

    try:
        return password_in(path)
    except ConfigError as err:
        raise CliError(str(err)) from None


def check_names(tenant: str, email: str, name: str, tenant_name: str) -> None:
    """What the command line gave, checked before anything is read or written."""
    if not _TENANT_ID.fullmatch(tenant):
        raise CliError(f"tenant id {tenant!r}: 1 to 64 letters, digits, - or _, starting with a letter or digit")
    if len(email) > 320 or not _EMAIL.fullmatch(email.strip()):
        raise CliError(f"{email!r} is not an email address")
    for label, value in (("--name", name), ("--tenant-name", tenant_name)):
        if not value.strip() or len(value) > 200:
            raise CliError(f"{label} must be 1 to 200 characters")


def bootstrap(
    core: Core, *, tenant: str, tenant_name: str, email: str, name: str, password: str, one_time: bool = False
) -> User:
    """The tenant's root account and its first developer. Refused, with nothing written, when the tenant
    (with a user) or the user exists already: run twice, it must not reset the developer's password. A generated
    password is `one_time`: it was shown on a terminal, so the first login replaces it."""
    from backroom.errors import BackroomError, ServiceFailure
    from backroom.identity.models import Role

    identity = core.identity
    try:
        # A tenant with no user is a bootstrap cut short between its two writes: it is finished, not refused.
        if identity.repo.get_account(tenant) is not None and identity.users_of(tenant):
            raise CliError(f"tenant {tenant} already exists on this stack: nothing was changed")
        if identity.repo.get_user(email) is not None:
            raise CliError(f"user {email.strip().lower()} already exists on this stack: nothing was changed")
        identity.create_account(tenant, tenant_name.strip())
        return identity.create_user(
            email, password, name=name.strip(), role=Role.DEVELOPER, account_id=tenant, one_time=one_time
        )
    except (BackroomError, ServiceFailure) as err:
        raise CliError(f"bootstrap failed: {err}") from None


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


@admin.command("bootstrap")
def bootstrap_command(
    stack: Annotated[
        str, typer.Option(envvar="BACKROOM_STACK", help="The CloudFormation stack (backroom-local: `make run`).")
    ],
    tenant: Annotated[str, typer.Option(help="The new tenant's id (its root account).")],
    tenant_name: Annotated[str, typer.Option(help="The tenant's name.")],
    email: Annotated[str, typer.Option(help="The first developer's email (the login).")],
    name: Annotated[str, typer.Option(help="The first developer's name.")],
    password_file: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Read the initial password from this file's first line (else generated)."),
    ] = None,
    region: Annotated[str | None, typer.Option(help="The stack's region (default: your AWS configuration's).")] = None,
) -> None:
    """Create the first tenant of an empty stack and its first developer (refused if the tenant exists)."""
    from backroom.wiring import build

    from infra.cli.stack import read_outputs

    check_names(tenant, email, name, tenant_name)
    given = read_password(password_file) if password_file is not None else None
    password = given or generate_password()
    outputs = read_outputs(stack, region=region)
    user = bootstrap(
        build(outputs.settings()),
        tenant=tenant,
        tenant_name=tenant_name,
        email=email,
        name=name,
        password=password,
        one_time=given is None,
    )
    out = _out()
    out.print(
        f"Stack {outputs.name} ({outputs.region}): tenant {tenant} ({tenant_name.strip()}) created,"
        f" with its developer {user.email}.",
        markup=False,
    )
    if given is None:
        out.print(
            f"Initial password of {user.email} (shown this once, kept only as a hash;"
            f" your first login replaces it): {password}",
            markup=False,
        )
    else:
        out.print(f"Initial password of {user.email}: the one in {password_file}.", markup=False)
    url = f"--url {outputs.api_url} " if outputs.api_url else ""
    out.print(f"Log in with: backroom {url}login --email {user.email}", markup=False)
