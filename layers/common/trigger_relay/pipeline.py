"""TriggerPipeline: a batch of records in, one outcome per record out, nothing lost.

1. parse each record into an InboundEvent (bad ones are rejected with the reason);
2. match routes and map fields into recipients (unmatched or unmappable: rejected);
3. skip (event, route) pairs the delivery ledger has seen in the last 24 hours;
4. plan as few calls as the vendors allow, and make them through the shared quota;
5. settle each record: delivered | deferred (re-enqueued with a delay) | rejected (stored with
   reasons) | retry (reported to SQS as a batch item failure, so it comes back).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError

from .delivery import Deferred, VendorCaller
from .events import BadEvent, InboundEvent, from_sqs_body
from .ledger import DeliveryLedger
from .observability import logger
from .parking import Deferrals, ParkedRecord, RejectedStore
from .planning import Delivery, plan_calls
from .routes import BadRecipient, RoutesFile
from .vendors.outcomes import CallResult, Outcome


class Status(StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    REJECTED = "rejected"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class InboundRecord:
    record_id: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class _Progress:
    """What happened to one record's deliveries so far."""

    record: InboundRecord
    delivered: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    deferred_until: float | None = None
    deferred: list[str] = field(default_factory=list)

    def status(self) -> Status:
        if self.retry:
            return Status.RETRY
        if self.deferred:
            return Status.DEFERRED
        if self.rejected:
            return Status.REJECTED
        return Status.DELIVERED


@dataclass(frozen=True)
class BatchReport:
    statuses: dict[str, Status]
    reasons: dict[str, list[str]]
    calls: int
    recipients: int
    held_back: Counter[str] = field(default_factory=Counter)
    """Records deferred or left for retry, by reason (each reason once per record)."""

    def count(self) -> Counter[Status]:
        return Counter(self.statuses.values())

    def partial_batch_response(self) -> dict[str, list[dict[str, str]]]:
        """SQS's partial batch response: exactly the records that must come back.

        Built here rather than with Powertools' BatchProcessor, whose import (asyncio,
        multiprocessing, every event data class) cost 130 ms of each cold start while the
        pipeline had already decided every record's outcome.
        """
        return {
            "batchItemFailures": [
                {"itemIdentifier": record_id}
                for record_id, status in self.statuses.items()
                if status is Status.RETRY
            ]
        }


class TriggerPipeline:
    def __init__(
        self,
        routes: RoutesFile,
        caller: VendorCaller,
        ledger: DeliveryLedger,
        deferrals: Deferrals,
        rejected: RejectedStore,
    ) -> None:
        self._routes = routes
        self.caller = caller
        self.ledger = ledger
        self._deferrals = deferrals
        self._rejected = rejected

    def process(self, records: list[InboundRecord]) -> BatchReport:
        progress = {r.record_id: _Progress(r) for r in records}
        deliveries = self._deliveries(records, progress)
        claims = self.ledger.claim(d.ledger_key for d in deliveries)
        pending = []
        for delivery in deliveries:
            record, key = progress[delivery.record_id], delivery.ledger_key
            if key in claims.delivered:
                record.delivered.append(f"{delivery.route.name}: earlier")
            elif key in claims.busy:  # SQS gave the same event to another invocation too
                record.deferred.append(f"{delivery.route.name}: being delivered by another call")
                record.deferred_until = max(record.deferred_until or 0, claims.busy[key] + 1)
            else:
                pending.append(delivery)

        calls = plan_calls(pending)
        recipients = 0
        for call in calls:
            account = self._routes.accounts[call.account]
            try:
                result = self.caller.call(
                    call.account, account, call.route.api, call.route.typed_params, call.recipients
                )
            except (BotoCoreError, ClientError) as exc:  # quota table throttled or unreachable
                logger.warning("call not made", extra={"api": call.route.action, "error": str(exc)})
                reason = f"AWS error before the call: {type(exc).__name__}"
                keys = list(call.deliveries)
                result = CallResult.same_for_all(keys, Outcome.RETRY, reason)
            recipients += len(call.recipients)
            delivered_keys = []
            for key, group in call.deliveries.items():
                for delivery in group:
                    record = progress[delivery.record_id]
                    tag = delivery.route.name
                    if isinstance(result, Deferred):
                        record.deferred.append(f"{tag}: {result.reason}")
                        record.deferred_until = max(record.deferred_until or 0, result.retry_at)
                        continue
                    outcome = result.by_recipient[key]
                    if outcome.outcome is Outcome.DELIVERED:
                        record.delivered.append(f"{tag}: {outcome.detail}")
                        delivered_keys.append(delivery.ledger_key)
                    elif outcome.outcome is Outcome.REJECTED:
                        record.rejected.append(f"{tag}: {outcome.detail}")
                    else:
                        record.retry.append(f"{tag}: {outcome.detail}")
            if delivered_keys:
                self.ledger.remember(delivered_keys)
                claims.mine.difference_update(delivered_keys)

        self._release(claims.mine)  # the claims of pairs not delivered
        self._park(progress)
        return BatchReport(
            statuses={rid: p.status() for rid, p in progress.items()},
            reasons={rid: p.rejected + p.deferred + p.retry for rid, p in progress.items()},
            calls=len(calls),
            recipients=recipients,
            held_back=Counter(
                reason for p in progress.values() for reason in dict.fromkeys(p.deferred + p.retry)
            ),
        )

    def _deliveries(
        self, records: list[InboundRecord], progress: dict[str, _Progress]
    ) -> list[Delivery]:
        deliveries = []
        for record in records:
            try:
                event = from_sqs_body(record.body, record.record_id, record.attributes)
            except BadEvent as exc:
                progress[record.record_id].rejected.append(str(exc))
                continue
            routes = self._routes.matching(event)
            if not routes:
                progress[record.record_id].rejected.append(_no_route(event))
                continue
            for route in routes:
                try:
                    recipient = route.recipient(event)
                except BadRecipient as exc:
                    progress[record.record_id].rejected.append(str(exc))
                    continue
                deliveries.append(Delivery(record.record_id, event.event_id, route, recipient))
        return deliveries

    def _release(self, keys: set[str]) -> None:
        if not keys:
            return
        try:
            self.ledger.release(keys)
        except (BotoCoreError, ClientError):  # the claims lapse by themselves; retries wait
            logger.warning("claims not released", extra={"count": len(keys)})

    def _park(self, progress: dict[str, _Progress]) -> None:
        """Store rejected records and re-enqueue deferred ones; on failure they come back."""
        deferred = [
            ParkedRecord(
                p.record.record_id, p.record.body, p.record.attributes, p.deferred, p.deferred_until
            )
            for p in progress.values()
            if p.status() is Status.DEFERRED
        ]
        rejected = [
            ParkedRecord(p.record.record_id, p.record.body, p.record.attributes, p.rejected)
            for p in progress.values()
            if p.status() is Status.REJECTED
        ]
        if deferred:
            try:
                failed = self._deferrals.park(deferred)
            except Exception:
                logger.exception("re-enqueue failed; records return through SQS")
                failed = {r.record_id for r in deferred}
            for record_id in failed:
                progress[record_id].retry.append("could not re-enqueue the deferred record")
        if rejected:
            try:
                key = self._rejected.store(rejected)
                logger.info("rejected records stored", extra={"count": len(rejected), "key": key})
            except Exception:
                logger.exception("storing rejected records failed; records return through SQS")
                for record in rejected:
                    progress[record.record_id].retry.append("could not store the rejection")


def _no_route(event: InboundEvent) -> str:
    return f"no route matches event type {event.type!r} (source {event.source!r})"
