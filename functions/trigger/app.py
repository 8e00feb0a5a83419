"""TriggerFunction: SQS batches (and direct EventBridge events) to vendor trigger calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trigger_relay.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Imported on the first invocation, which also loads the routes file: a bad file or a
    # missing setting fails the cold start there, naming the route and field. Keeping it out of
    # the module import halves the import time (bench/bench_coldstart.py).
    from trigger_relay.functions import trigger

    trigger.check_configuration()
    if "Records" not in event:  # invoked by an EventBridge rule directly
        record = trigger.eventbridge_as_record(event)
        report = trigger.run([record], context)
        trigger.park_unsent(report, [record])
        return {"status": report.statuses[record.record_id].value}
    report = trigger.run(trigger.sqs_records(event), context, messages=len(event["Records"]))
    return report.partial_batch_response()
