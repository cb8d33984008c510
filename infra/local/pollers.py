"""Lambda's SQS event source, locally: batch size, partial batch failures, visibility timeout and,
through the queue's redrive policy, the dead-letter queue after maxReceiveCount receives.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from infra.local.lambdas import FunctionPool
from infra.local.template import QueueSource

log = logging.getLogger("local.worker")


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    records = []
    for m in messages:
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


class QueuePoller:
    def __init__(self, source: QueueSource, pool: FunctionPool, sqs: Any, url: str, arn: str, region: str) -> None:
        self.source = source
        self.pool = pool
        self.sqs = sqs
        self.url = url
        self.arn = arn
        self.region = region

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receive one batch, run the handler on it, delete what succeeded; returns messages received."""
        received = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=min(self.source.batch_size, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return 0
        try:
            result = self.pool.invoke(sqs_event(received, self.arn, self.region)) or {}
        except Exception:
            # The whole batch failed: every message comes back after its visibility timeout.
            log.exception("%s failed a batch of %d", self.source.function, len(received))
            return len(received)
        failed = (
            {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            if self.source.partial_failures
            else set()
        )
        done = [m for m in received if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
        if failed:
            log.warning(
                "%s: %d of %d messages failed and will be retried", self.source.function, len(failed), len(received)
            )
        return len(received)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("poller for %s hit an error", self.source.queue)
                stop.wait(1)
