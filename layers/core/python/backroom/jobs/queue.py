"""The SQS queue that carries job work to the workers; SQS's errors leave it as `ServiceFailure`."""

from __future__ import annotations

import json
from typing import Any

from backroom.aws import Translated


class JobQueue:
    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs = Translated(sqs)
        self.url = url

    def send(self, messages: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
        for start in range(0, len(messages), 10):
            batch = messages[start : start + 10]
            entries = [
                {"Id": str(i), "MessageBody": json.dumps(m), "DelaySeconds": delay_seconds} for i, m in enumerate(batch)
            ]
            result = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            if result.get("Failed"):
                raise RuntimeError(f"SQS refused {len(result['Failed'])} job messages: {result['Failed'][0]}")
