"""TriggerFunction's work, behind its thin handler: SQS batches and direct EventBridge events."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from trigger_relay.functions import clients
from trigger_relay.functions.settings import TriggerSettings
from trigger_relay.observability import logger, metrics, scrub
from trigger_relay.pipeline.events import event_identity
from trigger_relay.pipeline.queue_messages import (
    Attribute,
    Handling,
    Outgoing,
    QueueWriter,
    unbundle,
    unwrap,
)
from trigger_relay.pipeline.relay import BatchReport, InboundRecord, Status, TriggerPipeline
from trigger_relay.pipeline.vendor_calls import VendorCaller
from trigger_relay.stores.ledger import DeliveryLedger
from trigger_relay.stores.parking import (
    REJECTED_PREFIX,
    UNCERTAIN_PREFIX,
    DeferralLimit,
    Deferrals,
    RejectedStore,
)

# Every vendor call has ended this long before Lambda's timeout, leaving time to settle the
# batch (claims, the rejected and uncertain stores, re-enqueueing).
DEADLINE_RESERVE_SECONDS = 10.0


class NotRequeued(RuntimeError):
    """A directly invoked event could be neither delivered nor put back on the queue: the
    invocation fails, so that Lambda's asynchronous retries (and its on-failure destination)
    take over."""


def build_pipeline(
    settings: TriggerSettings, context: LambdaContext | None, *, book_ahead: bool = False
) -> TriggerPipeline:
    """``book_ahead``: slots beyond the wait may be booked for records sent back to the queue
    (see run)."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    deadline = time.time() + max(1.0, remaining - DEADLINE_RESERVE_SECONDS)
    http = clients.http()
    caller = VendorCaller(
        http,
        clients.quota_gate(settings.quota_table),
        clients.credentials(settings.quota_table),
        deadline=deadline,
        gathering_seconds=settings.batching_window_seconds,
        book_ahead=book_ahead,
    )
    s3 = clients.aws("s3")
    return TriggerPipeline(
        clients.routes(settings.routes_file),
        caller,
        # no call outlives the invocation, so neither need its claims
        DeliveryLedger(settings.ledger_table, clients.aws("dynamodb"), hold_seconds=remaining),
        Deferrals(settings.ingest_queue_url, clients.aws("sqs")),
        RejectedStore(settings.rejected_bucket, s3, prefix=REJECTED_PREFIX),
        RejectedStore(settings.rejected_bucket, s3, prefix=UNCERTAIN_PREFIX),
        deferral_limit=DeferralLimit(settings.max_deferrals, settings.max_deferral_age_seconds),
        gathering_seconds=settings.batching_window_seconds,
        tickets=clients.slot_tickets(settings.quota_table),
    )


def check_configuration() -> None:
    """Load the settings and the routes file now, so that a mistake fails the cold start with a
    message that names it, instead of the first batch."""
    clients.routes(TriggerSettings.from_env().routes_file)


def sqs_records(event: dict[str, Any]) -> list[InboundRecord]:
    """The records of an SQS event: the producer's body and attributes (every data type), and
    what the relay carried with a re-enqueued copy (its identity, its deferrals). A bundle of
    records deferred together is unpacked into its members."""
    records = []
    now = time.time()
    for raw in event.get("Records", []):
        members = unbundle(raw.get("body", ""))
        if members is not None:
            message_id = raw["messageId"]
            records += [
                InboundRecord(
                    f"{message_id}:{n}", m.body, m.attributes, _seen_by(m.handling, now), message_id
                )
                for n, m in enumerate(members)
            ]
            continue
        attributes = {
            name: Attribute.from_lambda(value)
            for name, value in (raw.get("messageAttributes") or {}).items()
        }
        message = unwrap(raw.get("body", ""), attributes)
        handling = message.handling
        if handling.first_seen is None:
            sent = str((raw.get("attributes") or {}).get("SentTimestamp", ""))
            if sent.isdigit():
                handling = replace(handling, first_seen=int(sent) / 1000)
        records.append(
            InboundRecord(
                raw["messageId"], message.body, message.attributes, _seen_by(handling, now)
            )
        )
    return records


def _seen_by(handling: Handling, now: float) -> Handling:
    """First seen no later than now: the attribute travels with the message, and a time in the
    future would turn off the deferral age limit and make every hold start afresh."""
    if handling.first_seen is not None and not handling.first_seen <= now:  # NaN too
        return replace(handling, first_seen=now)
    return handling


def run(
    records: list[InboundRecord], context: LambdaContext | None, *, messages: int | None = None
) -> BatchReport:
    """``messages``: how many SQS messages the batch was (None: a direct invocation). Slots are
    booked only when it was not a full batch: records sent back to wait for a booked slot must
    be polled again before it, and a full batch says more messages may be waiting ahead of
    them (SQS hands out a backlog roughly in order; behind thousands of messages a booked
    slot would pass unused, and the quota with it)."""
    settings = TriggerSettings.from_env()
    book_ahead = messages is not None and messages < settings.batch_size
    pipeline = build_pipeline(settings, context, book_ahead=book_ahead)
    tickets = clients.slot_tickets(settings.quota_table)

    def quota_requests() -> int:  # the schedule's, and reading the tickets' secret
        return pipeline.caller.quota.requests + tickets.requests

    before = quota_requests()
    report = pipeline.process(records)
    _publish(report, pipeline, len(records), quota_requests() - before)
    return report


def eventbridge_as_record(event: dict[str, Any]) -> InboundRecord:
    """A directly invoked EventBridge event, as if the ingest rule had queued it."""
    return InboundRecord(str(event.get("id", "")), json.dumps(event), {})


def park_unsent(report: BatchReport, records: list[InboundRecord]) -> None:
    """Direct invocation has no queue to come back from: retry records go onto the ingest queue,
    as the same events. If SQS refuses one, the invocation fails (NotRequeued) rather than
    lose it."""
    settings = TriggerSettings.from_env()
    retry = [r for r in records if report.statuses[r.record_id] is Status.RETRY]
    if not retry:
        return
    writer = QueueWriter(clients.aws("sqs"), settings.ingest_queue_url)
    failed = writer.send(
        [
            Outgoing(
                r.body,
                r.attributes,
                replace(
                    r.handling,
                    event_id=event_identity(r.body, r.record_id, r.text_attributes()),
                ),
            )
            for r in retry
        ]
    )
    if failed:
        reasons = sorted(set(failed.values()))
        logger.error("direct events not re-queued", extra={"count": len(failed), "why": reasons})
        raise NotRequeued(f"{len(failed)} event(s) not re-queued: {'; '.join(reasons)}")


def _publish(
    report: BatchReport, pipeline: TriggerPipeline, records: int, quota_requests: int
) -> None:
    counts = report.count()
    add = metrics.add_metric
    add(name="EventsIn", unit=MetricUnit.Count, value=records)
    for status in Status:
        add(
            name=f"Events{status.value.title()}", unit=MetricUnit.Count, value=counts.get(status, 0)
        )
    calls = pipeline.caller.calls
    add(name="VendorCalls", unit=MetricUnit.Count, value=len(calls))
    add(name="EventsDeferredTooLong", unit=MetricUnit.Count, value=report.deferred_too_long)
    add(name="EventsHeld", unit=MetricUnit.Count, value=report.held)
    add(name="VendorLocks", unit=MetricUnit.Count, value=pipeline.caller.locks)
    add(name="QuotaRequests", unit=MetricUnit.Count, value=quota_requests)
    add(name="SlotsBooked", unit=MetricUnit.Count, value=pipeline.caller.booked)
    add(name="SlotTicketsUsed", unit=MetricUnit.Count, value=pipeline.caller.tickets_used)
    add(name="LedgerRequests", unit=MetricUnit.Count, value=pipeline.ledger.requests)
    by_api: Counter[str] = Counter()
    for call in calls:
        by_api[call.api] += 1
        add(name="RecipientsPerCall", unit=MetricUnit.Count, value=call.recipients)
        add(name="VendorLatency", unit=MetricUnit.Milliseconds, value=round(call.latency * 1000, 1))
    for api, count in by_api.items():
        with single_metric(
            name="VendorCallsByApi", unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="api", value=api)
    logger.info(
        "batch settled",
        extra={
            "records": records,
            "calls": len(calls),
            "recipients": report.recipients,
            **{s.value: counts.get(s, 0) for s in Status},
            # why records were held back; rejection reasons, which may quote the input, are
            # stored with the record in S3 and not logged
            "held_back": {scrub(reason): n for reason, n in report.held_back.items()},
        },
    )
