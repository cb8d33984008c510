"""Unit fixtures: the core on moto in-process, with tables, queues and bucket made from template.yaml."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from backroom import aws
from backroom.app.definition import Entity
from backroom.config import Settings
from backroom.identity import passwords
from backroom.ids import object_id
from backroom.records import Record
from backroom.wiring import Core, build
from moto import mock_aws

from infra.local import patches
from infra.local.moto_seed import put_items
from infra.local.provision import Stack, function_environment, provision
from infra.local.template import Template


def offline(patch: pytest.MonkeyPatch) -> None:
    """No endpoint or profile from the shell (nor a local stack's fixture earlier in this process, as
    AWS_ENDPOINT_URL_DYNAMODB): boto3 talks to in-process moto with throwaway credentials."""
    endpoints = [key for key in os.environ if key.startswith("AWS_ENDPOINT_URL")]
    for key in (*endpoints, "LOCALSTACK_HOST", "AWS_PROFILE"):
        patch.delenv(key, raising=False)
    patch.setenv("AWS_ACCESS_KEY_ID", "test")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """New password hashes at a test cost: at the real one (scrypt N=2^17, ~0.5 s each) the users that
    fixtures create and log in would add minutes to the suite. test_identity.py checks the real cost."""
    monkeypatch.setattr(passwords, "CURRENT", passwords.Scrypt(n=2**10, r=8, p=1))


@contextmanager
def core_on_moto(patch: pytest.MonkeyPatch) -> Iterator[tuple[Template, Core]]:
    """A whole core on in-process moto for a module-scoped fixture (the fixtures below are per test)."""
    offline(patch)
    patches.install()
    with mock_aws():
        aws.reset_clients()
        template = Template.load()
        stack = provision(boto3.session.Session(region_name="us-east-1"), None, template, visibility=2)  # type: ignore[arg-type]
        yield template, build(Settings.from_env({**os.environ, **function_environment(template, stack)}))
    aws.reset_clients()


def bulk(core: Core, tenant_id: str, entity: Entity, values: list[dict[str, Any]]) -> list[str]:
    """Records written as a job's bulk import writes them (version 1, index entries, no unique markers
    nor history), straight into moto: as BatchWriteItem would store them, without its round trips;
    then the table's counts of them."""
    records = [Record(rid=object_id(), data=data) for data in values]
    put_items(core.table.name, [item for r in records for item in core.records.items(tenant_id, entity.schema, r)])
    core.records.add_counts(tenant_id, entity.schema, records)
    return [r.rid for r in records]


@pytest.fixture
def stack() -> Iterator[Stack]:
    patches.install()
    with mock_aws():
        aws.reset_clients()
        yield provision(boto3.session.Session(region_name="us-east-1"), None, Template.load(), visibility=2)  # type: ignore[arg-type]
    aws.reset_clients()


@pytest.fixture
def settings(stack: Stack) -> Settings:
    env = {**os.environ, **function_environment(Template.load(), stack)}
    return Settings.from_env(env)


@pytest.fixture
def core(settings: Settings) -> Core:
    return build(settings)


class QueueDriver:
    """Plays Lambda's SQS event source in-process: receives messages and hands them to the engine."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.sqs = aws.client("sqs", core.settings)
        self.url = core.settings.jobs_queue_url

    def receive(self, wait: int = 0, most: int = 10) -> list[dict[str, Any]]:
        return self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=most, WaitTimeSeconds=wait).get(
            "Messages", []
        )

    def deliver(self, message: dict[str, Any]) -> None:
        self.core.worker.handle(json.loads(message["Body"]), lambda: 900_000)
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def drain(self, limit: int = 10_000) -> int:
        """Deliver messages until the queue is empty; returns how many were delivered."""
        delivered = 0
        while delivered < limit:
            batch = self.receive(most=min(10, limit - delivered))
            if not batch:
                return delivered
            for message in batch:
                self.deliver(message)
                delivered += 1
        return delivered


@pytest.fixture
def queue(core: Core) -> QueueDriver:
    return QueueDriver(core)
