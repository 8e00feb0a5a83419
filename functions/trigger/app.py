"""TriggerFunction: SQS batches (and direct EventBridge events) to vendor trigger calls."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from trigger_relay import service
from trigger_relay.observability import logger, metrics
from trigger_relay.pipeline import Status

# A bad routes file or a missing setting fails here, at cold start, naming the route and field.
service.check_configuration()

# A batch whose records all come back is answered with the list, not an error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" not in event:  # invoked by an EventBridge rule directly
        record = service.eventbridge_as_record(event)
        report = service.run([record], context)
        service.park_unsent(report, [record])
        return {"status": report.statuses[record.record_id].value}

    report = service.run(service.sqs_records(event), context)

    def settle(record: SQSRecord) -> str:
        status = report.statuses[record.message_id]
        if status is Status.RETRY:
            raise service.RetryRecord("; ".join(report.reasons[record.message_id]))
        return status.value

    return process_partial_response(
        event=event, record_handler=settle, processor=processor, context=context
    )
