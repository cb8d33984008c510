"""Creates what template.yaml declares (tables, queues, bucket) in the emulator or LocalStack.

Idempotent: resources that already exist are left as they are, so `make run` can be restarted
against a LocalStack that kept its state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.local.template import Template

STACK = "backroom-local"


@dataclass
class Stack:
    """Local names of the template's resources, and the values its !Ref / !GetAtt resolve to."""

    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[tuple[str, str], str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            return self.refs[value["Ref"]]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            resource, attr = value["Fn::GetAtt"]
            return self.attrs[(resource, attr)]
        return str(value)


def _table_args(name: str, props: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return args


def provision(
    session: boto3.session.Session, endpoint: str, template: Template, *, visibility: int | None = None
) -> Stack:
    """Create every table, queue and bucket; `visibility` overrides queues' visibility timeouts (tests)."""
    stack = Stack()
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)

    for logical, props in template.of_type("AWS::DynamoDB::Table").items():
        name = f"{STACK}-{logical}"
        stack.refs[logical] = name
        try:
            dynamodb.create_table(**_table_args(name, props))
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceInUseException":
                raise

    # Queues without a redrive policy first: the others point at them.
    queues = sorted(template.of_type("AWS::SQS::Queue").items(), key=lambda kv: "RedrivePolicy" in kv[1])
    for logical, props in queues:
        name = f"{STACK}-{logical}"
        attributes = {
            "VisibilityTimeout": str(visibility if visibility is not None else props.get("VisibilityTimeout", 30)),
            "MessageRetentionPeriod": str(props.get("MessageRetentionPeriod", 345600)),
        }
        redrive = props.get("RedrivePolicy")
        if redrive:
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": stack.resolve(redrive["deadLetterTargetArn"]),
                    "maxReceiveCount": int(redrive["maxReceiveCount"]),
                }
            )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stack.refs[logical] = url
        stack.queue_urls[logical] = url
        stack.attrs[(logical, "Arn")] = arn
        stack.attrs[(logical, "QueueName")] = name

    for logical in template.of_type("AWS::S3::Bucket"):
        name = f"{STACK}-{logical}".lower()
        stack.refs[logical] = name
        try:
            s3.create_bucket(Bucket=name)
        except ClientError as err:
            if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    return stack


def function_environment(template: Template, stack: Stack) -> dict[str, str]:
    """The environment every function gets (Globals plus its own variables), with references resolved."""
    env: dict[str, str] = {}
    for function in template.functions().values():
        for key, value in function.environment.items():
            env[key] = stack.resolve(value)
    return env
