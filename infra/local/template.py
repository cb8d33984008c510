"""Reads template.yaml: the local stack builds its tables, queues, bucket, routes and pollers from it."""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation's short tags as {"Fn": value} mappings."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def read_cloudformation(text: str) -> Any:
    """A CloudFormation YAML document, its short tags (`!Ref`, `!GetAtt`...) read as their long form."""
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


@functools.lru_cache(maxsize=4)
def _parsed(path: Path, version: int) -> Any:
    return read_cloudformation(path.read_text())


@dataclass
class Route:
    method: str
    path: str  # as in the template: /gateway/errand/v1/errands/{errand_id}
    function: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def pattern(self) -> re.Pattern[str]:
        regex = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                regex += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                regex += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                regex += re.escape(part)
        return re.compile(f"^{regex}$")

    def specificity(self) -> tuple[bool, int, int, bool]:
        """As API Gateway chooses: a greedy path (`{proxy+}`) loses to every other, literal routes win over
        parameterised ones, longer literals over shorter, and a route's own method over ANY on its path."""
        literal = len(re.sub(r"\{[^}]+\}", "", self.path))
        return ("+}" in self.path, self.path.count("{"), -literal, self.method == "ANY")


@dataclass
class QueueSource:
    function: str
    queue: str  # logical id
    batch_size: int
    partial_failures: bool


@dataclass
class Function:
    name: str
    code_uri: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any] = field(default_factory=dict)


@dataclass
class Template:
    resources: dict[str, Any]
    globals_: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = TEMPLATE) -> Template:
        # Parsed once per version of the file (a tenth of a second each, and every test's stack reads it);
        # a copy each time, as callers may change what they are given.
        data = copy.deepcopy(_parsed(path, path.stat().st_mtime_ns))
        return cls(
            resources=data["Resources"],
            globals_=data.get("Globals", {}).get("Function", {}),
            outputs=data.get("Outputs") or {},
            parameters=data.get("Parameters") or {},
        )

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v.get("Properties", {}) for k, v in self.resources.items() if v["Type"] == kind}

    def functions(self) -> dict[str, Function]:
        found = {}
        for name, props in self.of_type("AWS::Serverless::Function").items():
            env = dict(self.globals_.get("Environment", {}).get("Variables", {}))
            env.update(props.get("Environment", {}).get("Variables", {}))
            found[name] = Function(
                name=name,
                code_uri=ROOT / props["CodeUri"],
                handler=props.get("Handler", self.globals_.get("Handler", "app.lambda_handler")),
                timeout=int(props.get("Timeout", self.globals_.get("Timeout", 3))),
                memory=int(props.get("MemorySize", self.globals_.get("MemorySize", 128))),
                environment=env,
            )
        return found

    def routes(self) -> list[Route]:
        routes = []
        for name, props in self.of_type("AWS::Serverless::Function").items():
            for event in props.get("Events", {}).values():
                if event["Type"] == "HttpApi":
                    p = event["Properties"]
                    routes.append(Route(method=p["Method"].upper(), path=p["Path"], function=name))
        return sorted(routes, key=Route.specificity)

    def queue_sources(self) -> list[QueueSource]:
        sources = []
        for name, props in self.of_type("AWS::Serverless::Function").items():
            for event in props.get("Events", {}).values():
                if event["Type"] == "SQS":
                    p = event["Properties"]
                    sources.append(
                        QueueSource(
                            function=name,
                            queue=p["Queue"]["Fn::GetAtt"][0],
                            batch_size=int(p.get("BatchSize", 10)),
                            partial_failures="ReportBatchItemFailures" in p.get("FunctionResponseTypes", []),
                        )
                    )
        return sources
