"""`backroom admin bootstrap --stack NAME`: the first tenant and developer of a stack, found through the
stack's CloudFormation outputs (here a stack in in-process moto, registered as `make run` registers
the local one), typed as an operator types it."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import boto3
import pytest
from backroom.errors import PasswordChangeRequired
from backroom.identity.models import Role
from backroom.identity.passwords import verify_password
from typer.testing import CliRunner, Result

from infra.cli.main import app
from infra.cli.stack import connect
from infra.local.provision import STACK, Stack, register, stack_outputs
from infra.local.template import Template

API_URL = "http://127.0.0.1:3000"
TENANT = "acme"
EMAIL = "Dev@Acme.Example"


@pytest.fixture
def local(stack: Stack) -> Stack:
    """The provisioned resources, registered as CloudFormation stack `backroom-local`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto names the resource it creates as nothing (WaitConditionHandle)
        register(boto3.session.Session(region_name="us-east-1"), None, stack_outputs(Template.load(), stack, API_URL))
    return stack


def bootstrap(*extra: str, tenant: str = TENANT, email: str = EMAIL, stack: str = STACK) -> Result:
    args = ["admin", "bootstrap", "--stack", stack, "--tenant", tenant, "--tenant-name", "Acme Ltd"]
    args += ["--email", email, "--name", "Ada Dev", *extra]
    return CliRunner().invoke(app, args, catch_exceptions=False)


def shown_password(result: Result) -> str:
    found = re.findall(r"shown this once, kept only as a hash; your first login replaces it\): (\S+)", result.output)
    assert len(found) == 1, result.output
    return str(found[0])


def test_the_local_stack_carries_the_deployed_stack_outputs(local: Stack) -> None:
    # Same names as template.yaml's Outputs, each with the local resource's value: --stack reaches either
    cf = boto3.client("cloudformation", region_name="us-east-1")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cf.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    assert set(outputs) == set(Template.load().outputs)
    assert outputs["TableName"] == local.refs["MainTable"]
    assert outputs["JobsQueueUrl"] == local.queue_urls["JobsQueue"]
    assert outputs["ApiUrl"] == API_URL

    core = connect(STACK)
    assert core.settings.table_name == local.refs["MainTable"]
    assert core.settings.bucket_name == local.refs["FilesBucket"]
    assert core.settings.jobs_queue_url == local.queue_urls["JobsQueue"]


def test_registering_again_keeps_one_stack_and_follows_the_gateway(local: Stack) -> None:
    session = boto3.session.Session(region_name="us-east-1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        register(session, None, stack_outputs(Template.load(), local, API_URL))
        register(session, None, stack_outputs(Template.load(), local, "http://127.0.0.1:3999"))
    stacks = session.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    assert len(stacks) == 1
    assert {"OutputKey": "ApiUrl", "OutputValue": "http://127.0.0.1:3999"} in stacks[0]["Outputs"]


def test_bootstrap_creates_the_tenant_and_a_developer_with_a_generated_password_shown_once(local: Stack) -> None:
    result = bootstrap()

    assert result.exit_code == 0, result.output
    password = shown_password(result)
    assert len(password) >= 20
    assert result.output.count(password) == 1
    assert f"backroom --url {API_URL} login --email dev@acme.example" in result.output
    core = connect(STACK)
    account = core.identity.repo.get_account(TENANT)
    user = core.identity.repo.get_user(EMAIL)
    assert account is not None and account.name == "Acme Ltd" and account.parent_id is None
    assert user is not None and user.role is Role.DEVELOPER and user.tenant_id == TENANT and user.name == "Ada Dev"
    assert verify_password(password, user.password_hash)
    with pytest.raises(PasswordChangeRequired):  # shown on a terminal: the first login must replace it
        core.identity.login(EMAIL, password)
    chosen = "a password of my own choosing"
    assert core.identity.login(EMAIL, password, new_password=chosen).caller.account_id == TENANT
    assert core.identity.login(EMAIL, chosen).caller.account_id == TENANT


def test_a_second_bootstrap_is_refused_and_keeps_the_password(local: Stack, tmp_path: Path) -> None:
    first = shown_password(bootstrap())
    other = tmp_path / "password"
    other.write_text("an-entirely-different-one\n")

    again = bootstrap("--password-file", str(other))
    same_email = bootstrap(tenant="globex")

    assert again.exit_code == 2
    assert again.output.strip() == "Error: tenant acme already exists on this stack: nothing was changed"
    assert same_email.exit_code == 2 and "user dev@acme.example already exists" in same_email.output
    core = connect(STACK)
    user = core.identity.repo.get_user(EMAIL)
    assert user is not None and verify_password(first, user.password_hash)
    assert core.identity.repo.get_account("globex") is None  # refused before anything was written


def test_the_password_file_gives_the_password_and_is_never_printed(local: Stack, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("  correct horse battery staple  \nsecond line\n")

    result = bootstrap("--password-file", str(secret))

    assert result.exit_code == 0, result.output
    assert "correct horse" not in result.output and f"the one in {secret}" in result.output
    user = connect(STACK).identity.repo.get_user(EMAIL)
    assert user is not None and verify_password("correct horse battery staple", user.password_hash)
    assert not user.password_change_required  # the operator chose it


@pytest.mark.parametrize("content", ["", "\n", "short\n"])
def test_an_empty_or_short_password_file_is_refused_before_anything_is_written(
    local: Stack, tmp_path: Path, content: str
) -> None:
    secret = tmp_path / "password"
    secret.write_text(content)

    result = bootstrap("--password-file", str(secret))

    assert result.exit_code == 2
    assert "empty or shorter than 12 characters" in result.output
    assert connect(STACK).identity.repo.get_account(TENANT) is None


def test_no_password_is_taken_on_the_command_line(local: Stack) -> None:
    result = bootstrap("--password", "typed-where-ps-sees-it")

    assert result.exit_code == 2 and "No such option" in result.output
    assert connect(STACK).identity.repo.get_account(TENANT) is None


def test_an_absent_stack_or_one_without_an_output_is_one_line(local: Stack) -> None:
    cf = boto3.client("cloudformation", region_name="us-east-1")
    template = {
        "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {"TableName": {"Value": local.refs["MainTable"]}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cf.create_stack(StackName="not-backroom", TemplateBody=json.dumps(template))

    absent = bootstrap(stack="nope")
    partial = bootstrap(stack="not-backroom")

    assert absent.exit_code == 2
    assert absent.output.strip() == "Error: no CloudFormation stack nope in us-east-1 (check --stack and the region)"
    assert partial.exit_code == 2
    assert partial.output.strip() == (
        "Error: stack not-backroom has no output BucketName, JobsQueueUrl: is it a Backroom stack?"
    )


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--tenant", "a#b", "tenant id"), ("--email", "not-an-address", "not an email"), ("--name", " ", "--name")],
)
def test_bad_names_are_refused(local: Stack, option: str, value: str, says: str) -> None:
    given = {"--tenant": TENANT, "--email": EMAIL, "--name": "Ada Dev"} | {option: value}
    args = ["admin", "bootstrap", "--stack", STACK, "--tenant-name", "Acme Ltd"]
    result = CliRunner().invoke(app, [*args, *(x for kv in given.items() for x in kv)], catch_exceptions=False)

    assert result.exit_code == 2 and says in result.output
    assert connect(STACK).identity.repo.get_account(TENANT) is None


def test_the_stack_defaults_to_backroom_stack(local: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKROOM_STACK", STACK)
    args = ["admin", "bootstrap", "--tenant", TENANT, "--tenant-name", "Acme", "--email", EMAIL, "--name", "Ada"]

    result = CliRunner().invoke(app, args, catch_exceptions=False)

    assert result.exit_code == 0, result.output
