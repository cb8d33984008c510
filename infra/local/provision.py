"""Creates what template.yaml declares (tables, queues, bucket) in the emulator or LocalStack, and
registers them as CloudFormation stack `backroom-local`, whose Outputs are a deployed stack's.

Idempotent: resources that already exist are left as they are, so `make run` can be restarted
against a LocalStack that kept its state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.local.emulator import Endpoints
from infra.local.template import Template

STACK = "backroom-local"
_SUB = re.compile(r"\$\{([A-Za-z0-9:]+)\}")


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
        if isinstance(value, dict) and "Fn::Sub" in value:
            return self._sub(value["Fn::Sub"])
        return str(value)

    def _sub(self, text: Any) -> str:
        """A `!Sub` of `${Name}`s the local stack knows (its resources, parameters, region, URL suffix)."""
        if not isinstance(text, str) or "${!" in text or _SUB.sub("", text).count("${"):
            raise ValueError(f"the local stack resolves only `!Sub` text of plain `${{Name}}`s: {text!r}")
        unknown = sorted({name for name in _SUB.findall(text) if name not in self.refs})
        if unknown:
            raise ValueError(f"the local stack knows no {', '.join(unknown)} (in `!Sub {text}`)")
        return _SUB.sub(lambda m: self.refs[m.group(1)], text)

    def resolve_list(self, value: Any) -> list[str]:
        """A list property: a list of values, or a Ref to a CommaDelimitedList parameter."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return [item.strip() for item in self.resolve(value).split(",")]


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
    session: boto3.session.Session, endpoints: Endpoints | None, template: Template, *, visibility: int | None = None
) -> Stack:
    """Create every table, queue and bucket, each service's where `endpoints` say (None: where boto3's
    configuration says, as in-process moto wants); `visibility` overrides queues' visibility timeouts (tests).
    The tables go to whichever engine answers for DynamoDB: DynamoDB Local or moto's."""
    stack = Stack()
    # The pseudo parameters and the template's parameters (their defaults) a !Ref or !Sub may name.
    stack.refs.update({"AWS::Region": session.region_name or "us-east-1", "AWS::URLSuffix": "amazonaws.com"})
    for name, spec in template.parameters.items():
        if isinstance(spec, dict) and "Default" in spec:
            stack.refs[name] = str(spec["Default"])
    where = endpoints or Endpoints(aws=None)
    dynamodb = session.client("dynamodb", endpoint_url=where.of("dynamodb"))
    sqs = session.client("sqs", endpoint_url=where.of("sqs"))
    s3 = session.client("s3", endpoint_url=where.of("s3"))

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

    for logical, props in template.of_type("AWS::S3::Bucket").items():
        name = f"{STACK}-{logical}".lower()
        stack.refs[logical] = name
        try:
            s3.create_bucket(Bucket=name)
        except ClientError as err:
            if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        cors = props.get("CorsConfiguration")
        if cors:  # moto server and LocalStack answer preflights by it
            s3.put_bucket_cors(
                Bucket=name, CORSConfiguration={"CORSRules": [_cors_rule(stack, r) for r in cors["CorsRules"]]}
            )
    return stack


def _cors_rule(stack: Stack, rule: dict[str, Any]) -> dict[str, Any]:
    """A template's CorsRule as S3's API takes it (the same fields; AllowedOrigins may be a parameter)."""
    found: dict[str, Any] = {
        "AllowedMethods": list(rule["AllowedMethods"]),
        "AllowedOrigins": stack.resolve_list(rule["AllowedOrigins"]),
    }
    for key in ("AllowedHeaders", "ExposedHeaders"):
        if rule.get(key):
            found[key] = list(rule[key])
    if "MaxAge" in rule:
        found["MaxAgeSeconds"] = int(rule["MaxAge"])
    if rule.get("Id"):
        found["ID"] = str(rule["Id"])
    return found


def function_environment(template: Template, stack: Stack) -> dict[str, str]:
    """The environment every function gets (Globals plus its own variables), with references resolved."""
    env: dict[str, str] = {}
    for function in template.functions().values():
        for key, value in function.environment.items():
            # An empty value tells one function of no resource (the console's): in this one process it
            # must not blank what the others are told.
            if value != "":
                env[key] = stack.resolve(value)
    return env


# The output that names the API: a deployed stack's is API Gateway's URL, the local stack's the gateway's.
API_URL_OUTPUT = "ApiUrl"


def stack_outputs(template: Template, stack: Stack, api_url: str) -> dict[str, str]:
    """template.yaml's Outputs with the local stack's values: each Ref or GetAtt resolved to the local
    resource, the API's URL the local gateway's. An output of another form is left out."""
    found = {API_URL_OUTPUT: api_url}
    for name, output in template.outputs.items():
        value = output.get("Value") if isinstance(output, dict) else None
        if isinstance(value, dict) and ("Ref" in value or "Fn::GetAtt" in value):
            found[name] = stack.resolve(value)
    return found


def register(session: boto3.session.Session, endpoint: str | None, outputs: dict[str, str]) -> None:
    """The local stack as CloudFormation stack `backroom-local`, whose Outputs are those of a deployed
    stack: `--stack backroom-local` reaches it as `--stack NAME` reaches a stack of AWS. Idempotent: an
    existing stack is updated only when an output changed (the gateway's port)."""
    cf = session.client("cloudformation", endpoint_url=endpoint)
    body = json.dumps(
        {
            "Description": "The local stack (make run): its outputs say where its state lives",
            # CloudFormation's resource that does nothing: a stack needs one.
            "Resources": {"LocalStack": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {name: {"Value": value} for name, value in sorted(outputs.items())},
        }
    )
    try:
        current = cf.describe_stacks(StackName=STACK)["Stacks"][0]
    except ClientError as err:
        if err.response["Error"]["Code"] != "ValidationError":  # CloudFormation's "does not exist"
            raise
        cf.create_stack(StackName=STACK, TemplateBody=body)
        return
    if {o["OutputKey"]: o.get("OutputValue") for o in current.get("Outputs", [])} != outputs:
        cf.update_stack(StackName=STACK, TemplateBody=body)
