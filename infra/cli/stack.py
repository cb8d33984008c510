"""Stack targeting: an operator names a deployed stack, and the core is built on what that stack created.

The stack's CloudFormation Outputs (template.yaml: TableName, BucketName, JobsQueueUrl, ...) say where
its state lives; they are read with the operator's own AWS credentials, the only thing trusted. The
endpoint is configuration's alone (AWS_ENDPOINT_URL, or AWS_ENDPOINT_URL_CLOUDFORMATION, as boto3
reads them): the same call reads a stack of AWS or the local stack (`make run` registers `backroom-local`
in the emulator's CloudFormation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3
from backroom import aws
from backroom.config import MissingSettings, Settings
from backroom.wiring import Core, build
from botocore.exceptions import BotoCoreError, ClientError

from infra.cli.client import CliError

# The stack's outputs the core needs, and the settings (their environment names) they fill.
SETTINGS_OF_OUTPUTS = {
    "TableName": "BACKROOM_TABLE",
    "BucketName": "BACKROOM_BUCKET",
    "JobsQueueUrl": "BACKROOM_JOBS_QUEUE_URL",
}
API_URL = "ApiUrl"


class StackError(CliError):
    """The stack cannot be targeted (absent, unreadable, or without an output the core needs)."""


@dataclass(frozen=True)
class StackOutputs:
    """A stack's outputs, read once, and the region they were read in."""

    name: str
    region: str
    values: dict[str, str]

    @property
    def api_url(self) -> str | None:
        return self.values.get(API_URL)

    def settings(self) -> Settings:
        """The core's settings on this stack: its outputs over the operator's environment (endpoint, tuning)."""
        missing = sorted(output for output in SETTINGS_OF_OUTPUTS if not self.values.get(output))
        if missing:
            raise StackError(f"stack {self.name} has no output {', '.join(missing)}: is it a Backroom stack?")
        env = {key: value for key, value in os.environ.items() if key not in SETTINGS_OF_OUTPUTS.values()}
        env.update({variable: self.values[output] for output, variable in SETTINGS_OF_OUTPUTS.items()})
        env["AWS_REGION"] = self.region
        try:
            return Settings.from_env(env)
        except MissingSettings as err:
            raise StackError(f"stack {self.name}: {err}") from None


def read_outputs(stack: str, *, region: str | None = None) -> StackOutputs:
    """`describe_stacks` of `stack` in `region` (else the operator's configured region)."""
    session = boto3.session.Session(region_name=region)
    where = session.region_name or "us-east-1"
    try:
        found = session.client("cloudformation", region_name=where).describe_stacks(StackName=stack)["Stacks"]
    except ClientError as err:
        if aws.error_code(err) == "ValidationError":  # CloudFormation's answer for a stack it does not have
            raise StackError(f"no CloudFormation stack {stack} in {where} (check --stack and the region)") from None
        raise StackError(f"cannot read stack {stack} in {where}: {err}") from None
    except BotoCoreError as err:  # no credentials, no endpoint answering...
        raise StackError(f"cannot read stack {stack} in {where}: {err}") from None
    if not found:
        raise StackError(f"no CloudFormation stack {stack} in {where}")
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in found[0].get("Outputs", [])}
    return StackOutputs(name=stack, region=where, values=outputs)


def connect(stack: str, *, region: str | None = None) -> Core:
    """The core on the stack named `stack`, as its functions see it (table, bucket, jobs queue)."""
    return build(read_outputs(stack, region=region).settings())
