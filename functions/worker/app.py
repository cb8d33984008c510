"""Job worker: SQS messages carry a job's plan or one of its chunks to the job engine."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from backroom.config import require
from backroom.observability import event_handler, message_handler
from backroom.wiring import core

# Fails at cold start, naming the variables, if the deployment left them out (the job engine, which
# this function's services build, names the jobs queue and the files bucket).
require("bucket_name", "jobs_queue_url")
processor = BatchProcessor(event_type=EventType.SQS)


@message_handler
def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    core().worker.handle(json.loads(record.body), lambda_context.get_remaining_time_in_millis)


@event_handler
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
