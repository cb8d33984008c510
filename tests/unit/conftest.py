"""Unit fixtures: the core on moto in-process, with tables, queues and bucket made from template.yaml."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from backroom import aws
from backroom.config import Settings
from backroom.services import Services, build
from moto import mock_aws

from infra.local.moto_queries import install as narrow_moto_queries
from infra.local.provision import Stack, function_environment, provision
from infra.local.template import Template


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "LOCALSTACK_HOST", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def stack() -> Iterator[Stack]:
    narrow_moto_queries()
    with mock_aws():
        aws.reset_clients()
        yield provision(boto3.session.Session(region_name="us-east-1"), None, Template.load(), visibility=2)  # type: ignore[arg-type]
    aws.reset_clients()


@pytest.fixture
def settings(stack: Stack) -> Settings:
    env = {**os.environ, **function_environment(Template.load(), stack)}
    return Settings.from_env(env)


@pytest.fixture
def core(settings: Settings) -> Services:
    return build(settings)


class QueueDriver:
    """Plays Lambda's SQS event source in-process: receives messages and hands them to the engine."""

    def __init__(self, core: Services) -> None:
        self.core = core
        self.sqs = aws.client("sqs", core.settings)
        self.url = core.settings.jobs_queue_url

    def receive(self, wait: int = 0, most: int = 10) -> list[dict[str, Any]]:
        return self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=most, WaitTimeSeconds=wait).get(
            "Messages", []
        )

    def deliver(self, message: dict[str, Any]) -> None:
        self.core.jobs.handle(json.loads(message["Body"]), lambda: 900_000)
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
def queue(core: Services) -> QueueDriver:
    return QueueDriver(core)
