"""Dead letters of the jobs queue: a plan or chunk message SQS gave up on ends its job FAILED, with why.

Without it a job whose plan never ran would stay PENDING for ever (and one whose chunk never ran,
RUNNING). The reason names the message and the last crash the engine noted for the job.
"""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.config import require
from backroom.observability import event_handler, logger, message_handler
from backroom.wiring import core

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")
processor = BatchProcessor(event_type=EventType.SQS)


@message_handler
def record_handler(record: SQSRecord) -> None:
    try:
        message = json.loads(record.body)
    except ValueError:
        logger.warning("a dead letter that is not a job message", extra={"message_id": record.message_id})
        return
    if not isinstance(message, dict) or "job" not in message:
        logger.warning("a dead letter that names no job", extra={"message_id": record.message_id})
        return
    receives = record.attributes.approximate_receive_count
    core().worker.dead_letter(message, int(receives) if receives else None)


@event_handler
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
