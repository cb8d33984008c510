"""`make deploy-check`: rehearse a deploy of template.yaml without an AWS account.

1. Package: each function's CodeUri and each layer's ContentUri must be a directory of the repository
   holding the handler; each is zipped (a layer under `python/`, as `sam build` lays it out) into an
   artifacts bucket of the emulator, and the template points at those S3 objects, as `sam package`
   would.
2. Translate: SAM's own translator (aws-sam-translator, the library CloudFormation's
   `AWS::Serverless-2016-10-31` transform runs) turns it into plain CloudFormation, offline: a stub
   stands in for the IAM lookup of managed policy names.
3. Create the stack in the embedded emulator's CloudFormation (moto, in-process) and check that it
   reaches CREATE_COMPLETE, then check what was created against what the SAM template declares:
   outputs, queues and their dead-letter queues, event sources, environment, layers, routes and
   the policies of each function. Every check is derived from the template, none names a resource.
4. Bootstrap the stack as an operator would (`backroom admin bootstrap --stack NAME`): the core found
   through the stack's outputs, a first tenant and developer whose password verifies, a second
   bootstrap refused.

What moto's CloudFormation does not create (API Gateway v2, EventBridge Scheduler, ...) is listed,
and checked in the translated template instead. Exit status 0 when nothing is wrong, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import copy
import fnmatch
import io
import json
import logging
import os
import re
import sys
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from infra.local.template import read_cloudformation

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
STACK = "backroom-rehearsal"
ARTIFACTS = "backroom-rehearsal-artifacts"
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
BUCKET = "AWS::S3::Bucket"
APIS = ("AWS::Serverless::HttpApi", "AWS::Serverless::Api", "AWS::ApiGatewayV2::Api", "AWS::ApiGateway::RestApi")
# What `Ref` gives for each kind of resource a function's environment may point at.
NAMED = (TABLE, BUCKET, QUEUE)
SQS_DEFAULT_VISIBILITY = 30  # seconds, when a queue declares none
HTTP_API_TIMEOUT = 30  # seconds an HTTP API waits for its integration
LAMBDA_ENV_BYTES = 4096
LAMBDA_RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
SQS_DEFAULT_BATCH = 10
# A route's path parameters, as SAM writes them into the permission's source ARN.
_PATH_PARAM = re.compile(r"\{[^}]+\}")
_SUB_NAME = re.compile(r"\$\{[^}]+\}")


def _builds_text(sub: Any) -> bool:
    """Whether a `!Sub` builds text around its names (the console's bucket origins for its page's policy)
    rather than being one name alone (`!Sub "${FilesBucket}"`, a handle on the resource like a Ref)."""
    return isinstance(sub, str) and bool(_SUB_NAME.sub("", sub).strip())


def load_template(path: Path) -> dict[str, Any]:
    data = read_cloudformation(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ValueError(f"{path} is not a CloudFormation template (no Resources)")
    return data


@dataclass
class Report:
    """Every check's outcome: `ok`, `error` (the deploy would be wrong) or `note` (worth knowing)."""

    lines: list[tuple[str, str, str]] = field(default_factory=list)
    not_emulated: dict[str, list[str]] = field(default_factory=dict)

    def ok(self, area: str, message: str) -> None:
        self.lines.append(("ok", area, message))

    def error(self, area: str, message: str) -> None:
        self.lines.append(("error", area, message))

    def note(self, area: str, message: str) -> None:
        self.lines.append(("note", area, message))

    @property
    def errors(self) -> list[str]:
        return [f"{area}: {message}" for status, area, message in self.lines if status == "error"]

    @property
    def notes(self) -> list[str]:
        return [f"{area}: {message}" for status, area, message in self.lines if status == "note"]

    def render(self, *, quiet: bool = False) -> str:
        marks = {"ok": "  ok ", "error": "ERROR", "note": " note"}
        shown = [line for line in self.lines if not (quiet and line[0] == "ok")]
        out = [f"{marks[status]}  {area}: {message}" for status, area, message in shown]
        verdict = f"{len(self.errors)} error(s)" if self.errors else "no errors"
        checked = sum(1 for status, _, _ in self.lines if status == "ok")
        out.append(f"\ndeploy rehearsal: {checked} checks passed, {verdict}, {len(self.notes)} note(s)")
        return "\n".join(out)


# Packaging -----------------------------------------------------------------------------------------
def _zip_dir(directory: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, prefix + path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _defines(module: Path, name: str) -> bool:
    tree = ast.parse(module.read_text(), filename=str(module))
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name for node in tree.body
    ) or any(
        isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        for node in tree.body
    )


def package(sam: dict[str, Any], base: Path, report: Report) -> dict[str, bytes]:
    """Zip every local CodeUri / ContentUri and point the template at the zip's S3 object (in place)."""
    artifacts: dict[str, bytes] = {}
    globals_ = sam.get("Globals", {}).get("Function", {})
    for name, resource in sam["Resources"].items():
        props = resource.setdefault("Properties", {})
        kind = resource.get("Type")
        key = "CodeUri" if kind == FUNCTION else "ContentUri" if kind == LAYER else None
        if key is None:
            continue
        uri = props.get(key, globals_.get(key) if kind == FUNCTION else None)
        if not isinstance(uri, str) or uri.startswith("s3://"):
            continue  # already an S3 location (or inline code): nothing to package
        directory = (base / uri).resolve()
        if not directory.is_dir():
            report.error(f"package {name}", f"{key} {uri} is not a directory of the repository")
            continue
        if kind == FUNCTION:
            handler = str(props.get("Handler", globals_.get("Handler", "")))
            module, _, function = handler.rpartition(".")
            source = directory / (module.replace(".", "/") + ".py")
            if not module or not source.is_file() or not _defines(source, function):
                report.error(f"package {name}", f"handler {handler!r} is not defined in {uri}")
                continue
            artifacts[f"{name}.zip"] = _zip_dir(directory)
            report.ok(f"package {name}", f"{uri} holds {handler}")
        else:
            # `sam build` lays a Python layer out under python/, where Lambda puts it on sys.path.
            prefix = "" if directory.name != "python" else "python/"
            artifacts[f"{name}.zip"] = _zip_dir(directory, prefix)
            report.ok(f"package {name}", f"{uri} zipped under {prefix or '/'}")
        props[key] = {"Bucket": ARTIFACTS, "Key": f"{name}.zip"}
    return artifacts


# Translation ---------------------------------------------------------------------------------------
class _ManagedPolicies(dict[str, str]):
    """Stands in for the IAM lookup SAM makes of managed policy names: any name is an AWS managed policy."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __missing__(self, name: str) -> str:
        return f"arn:aws:iam::aws:policy/{name}"

    def get(self, name: str, default: Any = None) -> Any:
        return self[name]


def translate(sam: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    policies = _ManagedPolicies()
    return translator.translate(
        copy.deepcopy(sam), parameter_values=parameters, get_managed_policy_map=lambda: policies
    )


# The emulated stack ---------------------------------------------------------------------------------
@contextmanager
def _offline() -> Iterator[None]:
    """No endpoint, profile or real credentials reach boto3 while the in-process emulator runs."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k.startswith("LOCALSTACK")}
    for key in saved:
        del os.environ[key]
    fake = {"AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal", "AWS_DEFAULT_REGION": REGION}
    os.environ.update(fake)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("AWS_") or k.startswith("LOCALSTACK")]:
            del os.environ[key]
        os.environ.update(saved)


class Deployed:
    """The stack as the emulator created it, and how to resolve the template's expressions against it."""

    def __init__(self, session: boto3.session.Session, stack: str, sam: dict[str, Any], cfn: dict[str, Any]) -> None:
        self.session, self.stack, self.sam, self.cfn = session, stack, sam, cfn
        self.cf = session.client("cloudformation")
        self.lam = session.client("lambda")
        self.sqs = session.client("sqs")
        self.iam = session.client("iam")
        self.ddb = session.client("dynamodb")
        self.events = session.client("events")
        summaries = self.cf.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        self.physical = {s["LogicalResourceId"]: s.get("PhysicalResourceId", "") for s in summaries}
        self.created_types = {s["LogicalResourceId"]: s.get("ResourceType", "") for s in summaries}
        self.parameters = {
            p["ParameterKey"]: p["ParameterValue"]
            for p in self.cf.describe_stacks(StackName=stack)["Stacks"][0].get("Parameters", [])
        }

    def kind(self, logical: str) -> str:
        resource = self.sam["Resources"].get(logical) or self.cfn["Resources"].get(logical) or {}
        return str(resource.get("Type", ""))

    def ref(self, logical: str) -> str | None:
        if logical in self.parameters:
            return self.parameters[logical]
        pseudo = {
            "AWS::Region": REGION,
            "AWS::StackName": self.stack,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if logical in pseudo:
            return pseudo[logical]
        return self.physical.get(logical) or None

    def arn(self, logical: str) -> str | None:
        physical, kind = self.ref(logical), self.kind(logical)
        if not physical:
            return None
        if kind == QUEUE:
            return str(
                self.sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            )
        if kind == TABLE:
            return str(self.ddb.describe_table(TableName=physical)["Table"]["TableArn"])
        if kind == BUCKET:
            return f"arn:aws:s3:::{physical}"
        if kind in (FUNCTION, "AWS::Lambda::Function"):
            return str(self.lam.get_function_configuration(FunctionName=physical)["FunctionArn"])
        return None

    def attribute(self, logical: str, name: str) -> str | None:
        if name == "Arn":
            return self.arn(logical)
        physical = self.ref(logical)
        if self.kind(logical) == QUEUE and physical:
            return {"QueueName": physical.rsplit("/", 1)[-1], "QueueUrl": physical}.get(name)
        return None

    def resolve(self, value: Any) -> Any:
        """A template value with Ref, GetAtt and Sub resolved against the created stack (None if it cannot be)."""
        if isinstance(value, str | int | float | bool):
            return str(value) if not isinstance(value, str) else value
        if isinstance(value, dict) and len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return self.ref(str(arg))
            if fn == "Fn::GetAtt":
                logical, name = (arg if isinstance(arg, list) else str(arg).split(".", 1))[:2]
                return self.attribute(str(logical), str(name))
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

                def part(match: re.Match[str]) -> str:
                    token = match.group(1)
                    got = self.resolve(extra[token]) if token in extra else None
                    if got is None and "." in token:
                        got = self.attribute(*token.split(".", 1))
                    elif got is None:
                        got = self.ref(token)
                    return "\x00" if got is None else str(got)

                out = re.sub(r"\$\{([^}!]+)\}", part, text)
                return None if "\x00" in out else out
        return None

    def references(self, value: Any) -> set[str]:
        """The logical ids an expression names (Ref, GetAtt, ${...} of Sub)."""
        found: set[str] = set()
        if isinstance(value, dict):
            for fn, arg in value.items():
                if fn == "Ref":
                    found.add(str(arg))
                elif fn == "Fn::GetAtt":
                    found.add(str(arg[0] if isinstance(arg, list) else str(arg).split(".")[0]))
                elif fn == "Fn::Sub":
                    text = arg if isinstance(arg, str) else arg[0]
                    found.update(t.split(".")[0] for t in re.findall(r"\$\{([^}!]+)\}", text))
                    if not isinstance(arg, str):
                        found.update(self.references(arg[1]))
                else:
                    found.update(self.references(arg))
        elif isinstance(value, list):
            for item in value:
                found.update(self.references(item))
        return found


# Checks --------------------------------------------------------------------------------------------
def _sam_resources(sam: dict[str, Any], kind: str | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    kinds = (kind,) if isinstance(kind, str) else kind
    return {k: v.get("Properties", {}) or {} for k, v in sam["Resources"].items() if v.get("Type") in kinds}


def _function_settings(sam: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """A function's properties with the Globals SAM merges in (maps merged, lists appended)."""
    merged: dict[str, Any] = copy.deepcopy(sam.get("Globals", {}).get("Function", {}))
    for key, value in props.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_maps(merged[key], value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _merge_maps(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge_maps(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def check_outputs(d: Deployed, report: Report) -> None:
    stack = d.cf.describe_stacks(StackName=d.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    declared = d.sam.get("Outputs", {}) or {}
    named = {k: d.references(v.get("Value")) for k, v in declared.items()}
    for logical, resource in d.sam["Resources"].items():
        kind = resource.get("Type")
        if kind not in (*NAMED, *APIS):
            continue
        keys = [k for k, refs in named.items() if logical in refs]
        if not keys:
            report.error("outputs", f"no output names {kind} {logical}")
            continue
        physical = d.ref(logical)
        if physical:
            shown = [k for k in keys if physical in outputs.get(k, "")]
            if shown:
                report.ok("outputs", f"{', '.join(shown)} = {physical} ({logical})")
            else:
                report.error("outputs", f"{', '.join(keys)} do not show {logical}'s created name {physical}")
        else:
            report.ok("outputs", f"{', '.join(keys)} name {logical} (not emulated: checked in the template)")


def check_bootstrap(report: Report) -> None:
    """An operator's first step on the created stack: `backroom admin bootstrap --stack NAME`, which finds
    the table through the stack's outputs (`connect`). The developer must exist with the password
    given, and a second bootstrap of the tenant must be refused without touching that password."""
    from backroom import aws
    from backroom.identity.passwords import verify_password

    from infra.cli.admin import bootstrap, generate_password
    from infra.cli.client import CliError
    from infra.cli.stack import connect

    tenant, email, password = "rehearsal", "dev@rehearsal.example", generate_password()
    aws.reset_clients()  # clients of the emulator in this process only
    try:
        bootstrap(connect(STACK), tenant=tenant, tenant_name="Rehearsal", email=email, name="Dev", password=password)
        try:
            bootstrap(connect(STACK), tenant=tenant, tenant_name="Again", email=email, name="Dev", password="x" * 20)
            report.error("bootstrap", "a second bootstrap of the same tenant was not refused")
        except CliError as refused:
            report.ok("bootstrap", f"a second bootstrap is refused ({refused.message})")
        user = connect(STACK).identity.repo.get_user(email)
    except CliError as err:
        report.error("bootstrap", err.message)
        return
    finally:
        aws.reset_clients()
    if user is None or user.tenant_id != tenant or not verify_password(password, user.password_hash):
        report.error("bootstrap", f"{email} is not a user of {tenant} with the password given")
    else:
        report.ok("bootstrap", f"--stack {STACK}: developer {email} of tenant {tenant}, its password verifies")


def check_queues(d: Deployed, report: Report) -> None:
    queues = _sam_resources(d.sam, QUEUE)
    targets: dict[str, str] = {}  # dead-letter queue -> the queue that sends to it
    for name, props in queues.items():
        redrive = props.get("RedrivePolicy") or {}
        for target in d.references(redrive.get("deadLetterTargetArn")):
            targets[target] = name
    consumers = _queue_consumers(d)
    for name, props in queues.items():
        url = d.ref(name)
        if not url:
            report.error(f"queue {name}", "was not created")
            continue
        attrs = d.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = props.get("RedrivePolicy")
        if name in targets and not redrive:
            report.ok(f"queue {name}", f"is the dead-letter queue of {targets[name]}")
        elif not redrive:
            report.error(
                f"queue {name}", "has no dead-letter queue (no RedrivePolicy): a poison message loops for ever"
            )
        else:
            (target,) = d.references(redrive.get("deadLetterTargetArn")) or {""}
            deployed = json.loads(attrs.get("RedrivePolicy", "{}"))
            want_arn, want_count = d.arn(target) if target in queues else None, int(redrive.get("maxReceiveCount", 0))
            if want_arn is None:
                report.error(
                    f"queue {name}", f"RedrivePolicy names {target or 'nothing'}, which is no queue of the stack"
                )
            elif (
                deployed.get("deadLetterTargetArn") != want_arn
                or int(deployed.get("maxReceiveCount", -1)) != want_count
            ):
                report.error(f"queue {name}", f"created with redrive {deployed}, declared {target} after {want_count}")
            else:
                report.ok(f"queue {name}", f"dead-letter queue {target} after {want_count} receives ({want_arn})")
                mine, theirs = int(attrs.get("MessageRetentionPeriod", 345600)), _retention(d, target)
                if theirs < mine:
                    report.error(
                        f"queue {name}",
                        f"its dead-letter queue keeps messages {theirs} s, less than its own {mine} s: "
                        "a message's age counts from its first enqueue, so it would expire on arrival",
                    )
        visibility = int(attrs.get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY))
        for function, timeout in consumers.get(name, []):
            if visibility < timeout:
                report.error(
                    f"queue {name}",
                    f"visibility timeout {visibility} s is shorter than {function}'s timeout {timeout} s "
                    "(Lambda refuses such an event source mapping)",
                )
            elif visibility < 6 * timeout:
                report.note(
                    f"queue {name}",
                    f"visibility timeout {visibility} s < 6 x {function}'s timeout {timeout} s (AWS's advice)",
                )
            else:
                report.ok(f"queue {name}", f"visibility timeout {visibility} s >= 6 x {function}'s timeout {timeout} s")


def _retention(d: Deployed, queue: str) -> int:
    url = d.ref(queue)
    attrs = d.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])["Attributes"]
    return int(attrs.get("MessageRetentionPeriod", 345600))


def _queue_consumers(d: Deployed) -> dict[str, list[tuple[str, int]]]:
    consumers: dict[str, list[tuple[str, int]]] = {}
    for name, props in _sam_resources(d.sam, FUNCTION).items():
        settings = _function_settings(d.sam, props)
        for event in (props.get("Events") or {}).values():
            if event.get("Type") == "SQS":
                for queue in d.references(event.get("Properties", {}).get("Queue")):
                    consumers.setdefault(queue, []).append((name, int(settings.get("Timeout", 3))))
    return consumers


def check_functions(d: Deployed, report: Report) -> None:
    mappings = d.lam.list_event_source_mappings()["EventSourceMappings"]
    expected_mappings: set[str] = set()
    for name, props in _sam_resources(d.sam, FUNCTION).items():
        physical = d.ref(name)
        if not physical:
            report.error(f"function {name}", "was not created")
            continue
        config = d.lam.get_function_configuration(FunctionName=physical)
        settings = _function_settings(d.sam, props)
        env = _check_environment(d, report, name, settings, config)
        _check_layers(d, report, name, settings)
        _check_policies(d, report, name, props, settings, config, env)
        events = props.get("Events") or {}
        timeout = int(settings.get("Timeout", 3))
        if any(e.get("Type") in ("HttpApi", "Api") for e in events.values()) and timeout > HTTP_API_TIMEOUT:
            report.note(
                f"function {name}",
                f"timeout {timeout} s behind an API that gives up after {HTTP_API_TIMEOUT} s (the caller gets a 503)",
            )
        for event_name, event in events.items():
            kind, eprops = event.get("Type"), event.get("Properties") or {}
            if kind == "SQS":
                expected_mappings.add(_check_sqs_event(d, report, name, event_name, eprops, config, mappings))
            elif kind in ("HttpApi", "Api"):
                _check_route(d, report, name, event_name, kind, eprops, physical)
            elif kind in ("Schedule", "ScheduleV2"):
                _check_schedule(d, report, name, event_name, kind, eprops, config)
            else:
                report.note(f"function {name}", f"event {event_name} of type {kind} is not checked by the rehearsal")
    for mapping in mappings:
        if mapping["UUID"] not in expected_mappings:
            report.error(
                "event sources", f"mapping {mapping['EventSourceArn']} -> {mapping['FunctionArn']} is not declared"
            )


def _check_environment(
    d: Deployed, report: Report, name: str, settings: dict[str, Any], config: dict[str, Any]
) -> dict[str, tuple[str, Any]]:
    """Each declared variable as created; returns the variables that name a resource of the stack."""
    declared = (settings.get("Environment") or {}).get("Variables") or {}
    created = (config.get("Environment") or {}).get("Variables") or {}
    pointing: dict[str, tuple[str, Any]] = {}
    wrong = []
    for var, expr in declared.items():
        want = d.resolve(expr)
        if want is None:
            report.note(f"function {name}", f"{var} = {expr} cannot be resolved here; not compared")
        elif created.get(var) != want:
            wrong.append(f"{var} is {created.get(var)!r}, declared {want!r}")
        # A handle (a Ref or a GetAtt) points the function at a resource; a !Sub that builds text around a
        # name (the console's BACKROOM_FILES_ORIGINS: the bucket's origins for its page's policy) does not.
        if isinstance(expr, dict) and _builds_text(expr.get("Fn::Sub")):
            continue
        for logical in d.references(expr):
            if d.kind(logical) in NAMED:
                pointing[var] = (logical, expr)
    for var in sorted(set(created) - set(declared)):
        wrong.append(f"{var} is set but not declared")
    # What Lambda refuses and moto accepts: a key the runtime sets itself, more than 4 KB in all.
    wrong.extend(f"{var} is a key Lambda reserves" for var in sorted(set(declared) & LAMBDA_RESERVED_ENV))
    size = sum(len(str(k)) + len(str(v)) for k, v in created.items())
    if size > LAMBDA_ENV_BYTES:
        wrong.append(f"{size} bytes of variables, above Lambda's {LAMBDA_ENV_BYTES}")
    if wrong:
        report.error(f"function {name}", "environment: " + "; ".join(wrong))
    else:
        named = ", ".join(f"{var}={d.ref(logical)}" for var, (logical, _) in sorted(pointing.items()))
        report.ok(f"function {name}", f"environment as declared ({len(declared)} variables; {named})")
    return pointing


def _check_layers(d: Deployed, report: Report, name: str, settings: dict[str, Any]) -> None:
    declared = settings.get("Layers") or []
    translated = d.cfn["Resources"][name]["Properties"].get("Layers") or []
    layer_names = [layer["LayerName"] for layer in d.lam.list_layers()["Layers"]]
    for layer in declared:
        (logical,) = d.references(layer) or {""}
        if d.kind(logical) != LAYER:
            report.note(f"function {name}", f"layer {layer} is not a layer of this template; not checked")
            continue
        # SAM renames a layer version with a hash of its content: CoreLayer -> CoreLayer<hash>.
        versions = [
            r for r in d.references(translated) if r.startswith(logical) and d.kind(r) == "AWS::Lambda::LayerVersion"
        ]
        created = [n for n in layer_names if any(f"-{v}-" in f"-{n}-" or n == v for v in versions)]
        if not versions:
            report.error(f"function {name}", f"layer {logical} is declared but the translated function has none of it")
        elif not created:
            report.error(f"function {name}", f"layer {logical} ({versions[0]}) was not created")
        else:
            report.ok(f"function {name}", f"layer {logical} -> {versions[0]}, created as {created[0]}")


def _statements(d: Deployed, name: str, config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The Allow/Deny statements of a function's role, and the AWS managed policies it attaches.

    Inline policies are read from the emulator's IAM. moto's CloudFormation does not attach a role's
    ManagedPolicyArns, so those come from the translated template, with the documents moto ships.
    """
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    role = str(config["Role"]).rsplit("/", 1)[-1]
    statements: list[dict[str, Any]] = []
    for policy in d.iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = d.iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        if isinstance(document, str):  # moto keeps an inline policy of CloudFormation as a Python repr
            document = ast.literal_eval(document) if document.startswith("{'") else json.loads(document)
        found = document.get("Statement", [])
        statements.extend(found if isinstance(found, list) else [found])
    role_ref = d.cfn["Resources"][name]["Properties"].get("Role")
    role_logical = next(iter(d.references(role_ref)), "")
    managed_arns = d.cfn["Resources"].get(role_logical, {}).get("Properties", {}).get("ManagedPolicyArns", [])
    known = json.loads(aws_managed_policies_data)
    managed = []
    for arn in managed_arns:
        policy_name = str(d.resolve(arn) or arn).rsplit("/", 1)[-1]
        managed.append(policy_name)
        found = known.get(policy_name, {}).get("Document", {}).get("Statement", [])
        statements.extend(found if isinstance(found, list) else [found])
    return statements, managed


def _grants(statements: list[dict[str, Any]], arn: str, service: str) -> list[str]:
    """The actions of `service` the statements allow on `arn`."""
    actions: list[str] = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        resources = statement.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        if any(fnmatch.fnmatchcase(arn, str(r)) for r in resources):
            acts = statement.get("Action", [])
            actions.extend(a for a in (acts if isinstance(acts, list) else [acts]) if a.startswith(service) or a == "*")
    return actions


_SERVICE = {TABLE: "dynamodb:", BUCKET: "s3:", QUEUE: "sqs:"}


def _check_policies(
    d: Deployed,
    report: Report,
    name: str,
    props: dict[str, Any],
    settings: dict[str, Any],
    config: dict[str, Any],
    env: dict[str, tuple[str, Any]],
) -> None:
    """Each resource the function's environment points it at is named by its policies.

    Globals give every function the names of the stack's resources; a function that never touches a
    bucket or a queue rightly has no policy on it (least privilege), so for those a missing grant is a
    note. The table is checked strictly (every function authenticates its callers against it), and so
    is every resource a function names in its own Environment.
    """
    statements, managed = _statements(d, name, config)
    own = ((props.get("Environment") or {}).get("Variables") or {}).keys()
    for var, (logical, _) in sorted(env.items()):
        arn = d.arn(logical)
        kind = d.kind(logical)
        if arn is None:
            continue
        actions = _grants(statements, arn, _SERVICE[kind])
        if actions:
            report.ok(f"function {name}", f"policies name {logical} ({var}): {', '.join(sorted(set(actions)))}")
        elif kind == TABLE or var in own:
            report.error(f"function {name}", f"no policy names {logical}, which its {var} points it at ({arn})")
        else:
            report.note(
                f"function {name}", f"{var} names {logical}, which no policy of it grants: it must not touch it"
            )
    for event in (props.get("Events") or {}).values():
        if event.get("Type") == "SQS":
            for queue in d.references(event.get("Properties", {}).get("Queue")):
                arn = d.arn(queue) or ""
                granted = _grants(statements, arn, "sqs:")
                if {"sqs:ReceiveMessage", "sqs:*", "*"} & set(granted):
                    report.ok(f"function {name}", f"may receive from its event source {queue}")
                else:
                    report.error(f"function {name}", f"may not receive from its event source {queue}")
    if managed:
        report.ok(f"function {name}", "managed policies (from the translated template): " + ", ".join(managed))


def _check_sqs_event(
    d: Deployed,
    report: Report,
    name: str,
    event: str,
    props: dict[str, Any],
    config: dict[str, Any],
    mappings: list[dict[str, Any]],
) -> str:
    (queue,) = d.references(props.get("Queue")) or {""}
    source = d.arn(queue) if queue else d.resolve(props.get("Queue"))
    found = [m for m in mappings if m["EventSourceArn"] == source and m["FunctionArn"] == config["FunctionArn"]]
    if not found:
        report.error(f"function {name}", f"event {event}: no event source mapping from {queue or props.get('Queue')}")
        return ""
    mapping = found[0]
    want = {
        "BatchSize": int(props.get("BatchSize", SQS_DEFAULT_BATCH)),
        "FunctionResponseTypes": list(props.get("FunctionResponseTypes", [])),
        "State": "Enabled" if props.get("Enabled", True) else "Disabled",
    }
    got = {
        "BatchSize": mapping.get("BatchSize"),
        "FunctionResponseTypes": list(mapping.get("FunctionResponseTypes", [])),
        "State": mapping.get("State"),
    }
    if got != want:
        report.error(f"function {name}", f"event {event}: mapping from {queue} is {got}, declared {want}")
    else:
        report.ok(f"function {name}", f"event {event}: {queue} -> {name}, {want}")
    return str(mapping["UUID"])


def _route_suffix(method: str, path: str) -> str:
    verb = "*" if method.upper() in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method.upper()
    return f"/{verb}{_PATH_PARAM.sub('*', path)}"


def _check_route(
    d: Deployed, report: Report, name: str, event: str, kind: str, props: dict[str, Any], physical: str
) -> None:
    method, path = str(props.get("Method", "ANY")), str(props.get("Path", "/"))
    api_ref = props.get("ApiId" if kind == "HttpApi" else "RestApiId")
    (api,) = d.references(api_ref) or {"ServerlessHttpApi" if kind == "HttpApi" else "ServerlessRestApi"}
    body = d.cfn["Resources"].get(api, {}).get("Properties", {}).get("Body") or {}
    operations = (body.get("paths") or {}).get(path) or {}
    verb = "x-amazon-apigateway-any-method" if method.upper() == "ANY" else method.lower()
    integration = (operations.get(verb) or {}).get("x-amazon-apigateway-integration") or {}
    if name not in d.references(integration.get("uri")):
        report.error(f"route {method.upper()} {path}", f"the translated API {api} does not send it to {name}")
        return
    try:
        policy = json.loads(d.lam.get_policy(FunctionName=physical)["Policy"])
    except d.lam.exceptions.ResourceNotFoundException:
        policy = {"Statement": []}
    suffix = _route_suffix(method, path)
    allowed = [
        s
        for s in policy.get("Statement", [])
        if str(s.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn", "")).endswith(suffix)
        and "apigateway" in json.dumps(s.get("Principal", ""))
    ]
    if not allowed:
        report.error(
            f"route {method.upper()} {path}", f"{name} lets no API invoke it for this route (Lambda permission)"
        )
    else:
        report.ok(f"route {method.upper()} {path}", f"{api} -> {name}, invoke permission created ({event})")


def _check_schedule(
    d: Deployed, report: Report, name: str, event: str, kind: str, props: dict[str, Any], config: dict[str, Any]
) -> None:
    expression = props.get("Schedule")
    wanted_type = "AWS::Events::Rule" if kind == "Schedule" else "AWS::Scheduler::Schedule"
    rules = [
        (logical, r)
        for logical, r in d.cfn["Resources"].items()
        if r.get("Type") == wanted_type
        and name in d.references(r.get("Properties", {}).get("Targets", r.get("Properties", {}).get("Target")))
    ]
    matching = [(logical, r) for logical, r in rules if r["Properties"].get("ScheduleExpression") == expression]
    if not matching:
        report.error(f"function {name}", f"event {event}: no {wanted_type} runs it on {expression}")
        return
    logical = matching[0][0]
    physical = d.ref(logical)
    if kind == "Schedule" and physical:
        rule = d.events.describe_rule(Name=physical.split("|")[0].rsplit("/", 1)[-1])
        targets = d.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        if rule.get("ScheduleExpression") != expression or config["FunctionArn"] not in {t["Arn"] for t in targets}:
            report.error(
                f"function {name}",
                f"event {event}: rule {rule['Name']} is {rule.get('ScheduleExpression')} -> {targets}",
            )
        else:
            report.ok(f"function {name}", f"event {event}: rule {rule['Name']} runs it on {expression}")
    else:
        report.ok(f"function {name}", f"event {event}: {logical} ({wanted_type}, not emulated) runs it on {expression}")


def check_translated_routes(sam: dict[str, Any], cfn: dict[str, Any], report: Report) -> None:
    """No route in the translated APIs that the template does not declare."""
    declared = set()
    for name, props in _sam_resources(sam, FUNCTION).items():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") in ("HttpApi", "Api"):
                p = event.get("Properties") or {}
                declared.add((str(p.get("Method", "ANY")).lower(), str(p.get("Path", "/")), name))
    translated: set[tuple[str, str, str]] = set()
    for resource in cfn["Resources"].values():
        if resource.get("Type") in APIS:
            for path, ops in ((resource.get("Properties", {}).get("Body") or {}).get("paths") or {}).items():
                for verb, op in ops.items():
                    uri = json.dumps((op or {}).get("x-amazon-apigateway-integration", {}).get("uri"))
                    targets = re.findall(r"\$\{(\w+)\.Arn\}", uri)
                    verb = "any" if verb == "x-amazon-apigateway-any-method" else verb
                    translated.update((verb, path, t) for t in targets)
    extra = translated - declared
    if extra:
        report.error("routes", f"the translated API has routes the template does not declare: {sorted(extra)}")
    else:
        report.ok("routes", f"{len(declared)} declared routes, the translated API has exactly those")


def check_not_emulated(cfn: dict[str, Any], d: Deployed, report: Report) -> None:
    for logical, resource in cfn["Resources"].items():
        if not d.created_types.get(logical):
            report.not_emulated.setdefault(resource["Type"], []).append(logical)
    for kind, names in sorted(report.not_emulated.items()):
        report.note(
            "not emulated",
            f"{kind} ({', '.join(names)}): moto's CloudFormation skips it; checked in the translated template",
        )
    report.note(
        "not emulated",
        "moto's CloudFormation keeps no function's Layers, TracingConfig, Architectures, LoggingConfig or Tags, "
        "and attaches no role's ManagedPolicyArns: layers and managed policies are checked in the translated template",
    )


# The whole rehearsal -------------------------------------------------------------------------------
def rehearse(template: Path = TEMPLATE, parameters: dict[str, str] | None = None) -> Report:
    """Package, translate, create and check; every finding is in the report, nothing is raised for them."""
    report = Report()
    sam = load_template(template)
    values = {k: str(v.get("Default")) for k, v in (sam.get("Parameters") or {}).items() if "Default" in v}
    values.update(parameters or {})
    artifacts = package(sam, template.parent, report)
    if report.errors:
        return report
    try:
        cfn = translate(sam, values)
    except Exception as exc:  # the translator's own errors say what is wrong with the template
        report.error("translate", str(exc))
        return report
    report.ok("translate", f"SAM -> {len(cfn['Resources'])} CloudFormation resources")
    moto_log = logging.getLogger("moto")
    level = moto_log.level
    moto_log.setLevel(logging.ERROR)  # it logs each resource type it cannot create; the report lists them
    try:
        return _create_and_check(sam, cfn, values, artifacts, report)
    finally:
        moto_log.setLevel(level)


def _create_and_check(
    sam: dict[str, Any], cfn: dict[str, Any], values: dict[str, str], artifacts: dict[str, bytes], report: Report
) -> Report:
    from moto import mock_aws

    with _offline(), mock_aws(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # and warns once per resource
        session = boto3.session.Session(region_name=REGION)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=ARTIFACTS)
        for key, body in artifacts.items():
            s3.put_object(Bucket=ARTIFACTS, Key=key, Body=body)
        cf = session.client("cloudformation")
        try:
            cf.create_stack(
                StackName=STACK,
                TemplateBody=json.dumps(cfn),
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        except Exception as exc:
            report.error("create stack", str(exc))
            return report
        status = cf.describe_stacks(StackName=STACK)["Stacks"][0]
        if status["StackStatus"] != "CREATE_COMPLETE":
            report.error("create stack", f"{status['StackStatus']}: {status.get('StackStatusReason', '')}")
            return report
        report.ok("create stack", f"{STACK} CREATE_COMPLETE")
        deployed = Deployed(session, STACK, sam, cfn)
        check_not_emulated(cfn, deployed, report)
        check_outputs(deployed, report)
        check_queues(deployed, report)
        check_functions(deployed, report)
        check_translated_routes(sam, cfn, report)
        check_bootstrap(report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--quiet", action="store_true", help="print only errors, notes and the verdict")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="a template parameter")
    args = parser.parse_args(argv)
    parameters = dict(p.split("=", 1) for p in args.parameter)
    report = rehearse(args.template.resolve(), parameters)
    print(report.render(quiet=args.quiet))
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
