"""TriggerPipeline: a batch of records in, one outcome per record out, nothing lost.

1. parse each record into an InboundEvent (bad ones are rejected with the reason);
2. match routes and map fields into recipients (unmatched or unmappable: rejected); one
   record's failure, or one route's, decides that record or route alone;
3. claim the (event, route) pairs in the delivery ledger: pairs settled in the last 24 hours
   are not called again, pairs another invocation holds are deferred;
4. plan as few calls as the vendors allow, and make them through the shared quota. A call with
   room for more recipients goes out only if the next slot is its own; when other callers are
   queued ahead, its records are held back (deferred together until the next slot, at most
   their route's ``max_hold_seconds`` after they first arrived), so that the calls the quota
   does allow go out full;
5. settle each record: delivered | deferred (re-enqueued with a delay, as the same event) |
   rejected (stored with reasons) | uncertain (the vendor may have acted on it and does not
   deduplicate: stored for an operator, never repeated automatically) | retry (reported to SQS
   as a batch item failure, so it comes back).
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError

from trigger_relay.observability import logger
from trigger_relay.pipeline.decide import route_event
from trigger_relay.pipeline.events import BadEvent, from_sqs_body
from trigger_relay.pipeline.planning import Delivery, PlannedCall, plan_calls
from trigger_relay.pipeline.queue_messages import Attribute, Handling
from trigger_relay.pipeline.routes import RoutesFile
from trigger_relay.pipeline.vendor_calls import Deferred, VendorCaller, quota_key
from trigger_relay.stores.ledger import Claims, DeliveryLedger
from trigger_relay.stores.parking import DeferralLimit, Deferrals, ParkedRecord, RejectedStore
from trigger_relay.stores.tickets import SlotTickets
from trigger_relay.vendors.outcomes import CallResult, Outcome

# A partly settled record that must be retried comes back after this long, as a copy.
RETRY_DELAY_SECONDS = 30.0
# A held record comes back no sooner than this share of its route's hold time after each hold,
# so it is held at most about this many times (each counts towards the DeferralLimit).
HOLD_STEPS = 6
HELD = "held for a fuller call: no free quota slot now"


class Status(StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    REJECTED = "rejected"
    UNCERTAIN = "uncertain"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class InboundRecord:
    record_id: str
    body: str
    attributes: dict[str, Attribute] = field(default_factory=dict)
    handling: Handling = field(default_factory=Handling)
    # The SQS message it came in, when that carried several records (a bundle): SQS can only
    # return the whole message, so such a record is never left for SQS to retry alone.
    message_id: str | None = None

    def text_attributes(self) -> dict[str, str]:
        """The String and Number attributes, as routes match them."""
        return {k: v.text for k, v in self.attributes.items() if v.text is not None}


@dataclass
class _Progress:
    """What happened to one record's deliveries so far."""

    record: InboundRecord
    event_id: str | None = None
    delivered: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    others_until: float | None = None  # the latest deferral but for booked slots
    booked_until: float | None = None  # the earliest return for a slot booked for it
    deferred: list[str] = field(default_factory=list)
    # deferred for something other than a full schedule: counts towards the DeferralLimit
    counted: bool = False
    uncertain: list[str] = field(default_factory=list)  # found now: to be stored
    uncertain_keys: list[str] = field(default_factory=list)
    uncertain_earlier: list[str] = field(default_factory=list)  # stored by an earlier run
    tickets: list[str] = field(default_factory=list)  # slots booked for its calls (signed)
    routes: list[str] | None = None  # the routes this event is handled on (None: not parsed)
    settled: set[str] = field(default_factory=set)  # routes delivered or uncertain

    def status(self) -> Status:
        if self.retry:
            return Status.RETRY
        if self.deferred:
            return Status.DEFERRED
        if self.uncertain or self.uncertain_earlier:
            return Status.UNCERTAIN
        if self.rejected:
            return Status.REJECTED
        return Status.DELIVERED

    def defer(
        self, reason: str, until: float, *, counted: bool = True, booked: bool = False
    ) -> None:
        self.deferred.append(reason)
        if booked:
            self.booked_until = min(self.booked_until or math.inf, until)
        else:
            self.others_until = max(self.others_until or 0, until)
        self.counted = self.counted or counted

    @property
    def deferred_until(self) -> float | None:
        """When it comes back: after every other deferral, or else for its earliest booked
        slot (the invocation then waits for the later ones, or sends them back unspent)."""
        return self.others_until if self.others_until is not None else self.booked_until

    def pending(self) -> tuple[str, ...] | None:
        """The routes still to settle, or None for every route (the event was never parsed)."""
        if self.routes is None:
            return None
        return tuple(r for r in self.routes if r not in self.settled)

    def parked(
        self,
        reasons: list[str],
        keys: list[str] | None = None,
        routes: tuple[str, ...] | None = None,
    ) -> ParkedRecord:
        r = self.record
        if routes is None:
            # a record no route took (no match, bad event) keeps what it had: every route, so
            # that a redrive after the routes file is fixed routes it afresh
            routes = self.pending() if self.routes else r.handling.routes
        # a ticket brought in was used or dropped here: only those issued now go on
        handling = replace(
            r.handling, event_id=self.event_id, routes=routes, tickets=tuple(self.tickets)
        )
        return ParkedRecord(
            r.record_id,
            r.body,
            r.attributes,
            reasons,
            self.deferred_until,
            handling,
            keys or [],
            counted=self.counted,
        )


@dataclass(frozen=True)
class BatchReport:
    statuses: dict[str, Status]
    reasons: dict[str, list[str]]
    calls: int
    recipients: int
    held_back: Counter[str] = field(default_factory=Counter)
    """Records deferred or left for retry, by reason (each reason once per record)."""
    deferred_too_long: int = 0
    held: int = 0
    """Records held back for a fuller call (and deferred for nothing else)."""
    message_ids: dict[str, str] = field(default_factory=dict)
    """The SQS message of each record that came in a bundle."""

    def count(self) -> Counter[Status]:
        return Counter(self.statuses.values())

    def partial_batch_response(self) -> dict[str, list[dict[str, str]]]:
        """SQS's partial batch response: exactly the records that must come back.

        Built here rather than with Powertools' BatchProcessor, whose import (asyncio,
        multiprocessing, every event data class) cost 130 ms of each cold start while the
        pipeline had already decided every record's outcome.
        """
        failed = (
            self.message_ids.get(record_id, record_id)
            for record_id, status in self.statuses.items()
            if status is Status.RETRY
        )
        return {"batchItemFailures": [{"itemIdentifier": m} for m in dict.fromkeys(failed)]}


class TriggerPipeline:
    def __init__(
        self,
        routes: RoutesFile,
        caller: VendorCaller,
        ledger: DeliveryLedger,
        deferrals: Deferrals,
        rejected: RejectedStore,
        uncertain: RejectedStore | None = None,
        *,
        deferral_limit: DeferralLimit | None = None,
        gathering_seconds: float = 0.0,
        tickets: SlotTickets | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``gathering_seconds``: how long the event source mapping may gather a batch (its
        batching window). Records deferred for a slot come back that much before it, so that
        the invocation that gets them is running when the slot comes. ``tickets``: signs the
        slots booked for records sent back to wait for them (without, none is carried)."""
        self._routes = routes
        self.caller = caller
        self.ledger = ledger
        self._deferrals = deferrals
        self._rejected = rejected
        self._uncertain = uncertain or rejected
        self._limit = deferral_limit or DeferralLimit()
        self._gathering = gathering_seconds
        self._tickets = tickets
        self._issued: list[tuple[str, float, list[str]]] = []  # (ticket, back at, records)
        self._clock = clock

    def process(self, records: list[InboundRecord]) -> BatchReport:
        self._issued = []
        progress = {r.record_id: _Progress(r) for r in records}
        deliveries = self._deliveries(records, progress)
        claims = self._claim(deliveries, progress)
        self._bring_tickets(deliveries, claims, progress)
        pending = []
        for delivery in deliveries:
            record, key, tag = (
                progress[delivery.record_id],
                delivery.ledger_key,
                delivery.route.name,
            )
            if key in claims.delivered:
                record.delivered.append(f"{tag}: earlier")
                record.settled.add(tag)
            elif key in claims.uncertain:
                record.uncertain_earlier.append(f"{tag}: uncertain earlier, stored for an operator")
                record.settled.add(tag)
            elif key in claims.lapsed:  # an invocation died holding it, perhaps mid-call
                record.uncertain.append(f"{tag}: an earlier invocation ended without a result")
                record.uncertain_keys.append(key)
                record.settled.add(tag)
            elif key in claims.busy:  # SQS gave the same event to another invocation too
                record.defer(f"{tag}: being delivered by another call", claims.busy[key] + 1)
            elif key in claims.mine:
                pending.append(delivery)

        refused: list[tuple[Delivery, str]] = []
        planned = plan_calls(pending, refused)
        # calls with a slot brought back first, in slot order: waiting for another call's
        # slot first could make theirs too late to use
        if self._tickets is not None:
            planned.sort(key=self._ticket_order())
        queue = deque(planned)
        for delivery, reason in refused:  # released with the other claims not delivered
            progress[delivery.record_id].rejected.append(reason)
        calls = recipients = 0
        while queue:
            call = queue.popleft()
            hold = self._hold(call, progress)
            made = len(self.caller.calls)
            result = self._call(call, wait=hold is None)
            if len(self.caller.calls) > made:  # requests sent, whatever came of them
                calls += 1
                recipients += len(call.recipients)
            if isinstance(result, Deferred) and result.busy:
                # back early enough to be gathered by then, but never at once: a full batch
                # is not gathered for the window, and would come straight back (records with a
                # booked slot may: they wait for it, or go back with it unspent)
                back = result.retry_at - self._gathering
                if result.ticket is not None:
                    back = max(back, self._clock())
                elif back <= self._clock() + 1:
                    back = result.retry_at
                if hold is not None and result.ticket is None:
                    until, step = hold
                    # on a grid of whole steps shared by every invocation: what different
                    # invocations held comes back at the same moment, to be planned together
                    after = max(back, self._clock() + step)
                    retry_at = min(until, math.ceil(after / step) * step)
                    self._settle(call, Deferred(retry_at, HELD, busy=True), progress, claims)
                    continue
                result = replace(result, retry_at=back)
            if isinstance(result, CallResult) and result.vendor_code == "414":
                halves = call.split()
                if halves:  # the URI was too long for this many recipients: half as many
                    queue.extendleft(reversed(halves))
                    continue
            self._settle(call, result, progress, claims)

        self._finish(progress, claims)
        statuses = {rid: p.status() for rid, p in progress.items()}
        return BatchReport(
            statuses=statuses,
            reasons={
                rid: p.rejected + p.uncertain + p.uncertain_earlier + p.deferred + p.retry
                for rid, p in progress.items()
            },
            calls=calls,
            recipients=recipients,
            held_back=Counter(
                reason for p in progress.values() for reason in dict.fromkeys(p.deferred + p.retry)
            ),
            deferred_too_long=sum(
                any(r.startswith("deferred too long") for r in p.rejected)
                for p in progress.values()
            ),
            held=sum(
                statuses[rid] is Status.DEFERRED and all(r.endswith(HELD) for r in p.deferred)
                for rid, p in progress.items()
            ),
            message_ids={r.record_id: r.message_id for r in records if r.message_id},
        )

    def _deliveries(
        self, records: list[InboundRecord], progress: dict[str, _Progress]
    ) -> list[Delivery]:
        deliveries = []
        for record in records:
            state = progress[record.record_id]
            try:
                deliveries += self._record_deliveries(record, state)
            except Exception as exc:  # one record's surprise must not fail the batch
                # the type only: an exception's message may quote the event (an address)
                logger.error(
                    "record not routed",
                    extra={"record_id": record.record_id, "error": type(exc).__name__},
                )
                state.rejected.append(f"could not be routed: {type(exc).__name__}")
        return deliveries

    def _record_deliveries(self, record: InboundRecord, state: _Progress) -> list[Delivery]:
        try:
            event = from_sqs_body(
                record.body, record.record_id, record.text_attributes(), record.handling.event_id
            )
        except BadEvent as exc:
            state.rejected.append(str(exc))
            return []
        state.event_id = event.event_id  # known even if routing it fails unexpectedly
        decision = route_event(self._routes, event, record.record_id, record.handling.routes)
        state.routes = decision.handled
        state.rejected += decision.rejected
        return decision.deliveries

    def _claim(self, deliveries: list[Delivery], progress: dict[str, _Progress]) -> Claims:
        strict = {d.ledger_key for d in deliveries if not d.route.repeat_safe}
        try:
            return self.ledger.claim((d.ledger_key for d in deliveries), strict)
        except (BotoCoreError, ClientError) as exc:  # the ledger is throttled or unreachable
            logger.warning("ledger not reached", extra={"error": type(exc).__name__})
            for delivery in deliveries:
                progress[delivery.record_id].retry.append(
                    f"{delivery.route.name}: ledger unreachable ({type(exc).__name__})"
                )
            return Claims()

    def _bring_tickets(
        self, deliveries: list[Delivery], claims: Claims, progress: dict[str, _Progress]
    ) -> None:
        """Hand the caller the slots booked for these records. A ticket counts only on a record
        whose claim this invocation holds (a copy SQS delivered twice is claimed once), and
        only if the relay signed it (a producer can write any message attribute)."""
        if self._tickets is None:
            return
        holders = {d.record_id for d in deliveries if d.ledger_key in claims.mine}
        tokens = [
            (record_id, token)
            for record_id in sorted(holders)
            for token in progress[record_id].record.handling.tickets
        ]
        for record_id, token in tokens:
            try:
                ticket = self._tickets.check(token)
            except (BotoCoreError, ClientError) as exc:  # the secret could not be read
                logger.warning("slot ticket not checked", extra={"error": type(exc).__name__})
                return
            except Exception as exc:  # a producer's attribute must not fail the batch
                logger.warning("slot ticket unreadable", extra={"error": type(exc).__name__})
                ticket = None
            if ticket is None:
                logger.warning("slot ticket not the relay's", extra={"record_id": record_id})
            else:
                self.caller.bring(ticket)

    def _ticket_order(self) -> Callable[[PlannedCall], float]:
        """Sort key of planned calls: each call of a quota key, in planning order, takes the
        next usable slot brought back for that key; calls with one go first, in slot order,
        the rest after (in planning order)."""
        left: dict[str, list[float]] = {}

        def slot(call: PlannedCall) -> float:
            account = self._routes.accounts[call.account]
            key = quota_key(call.account, account, call.route.api)
            if key not in left:
                left[key] = self.caller.usable_tickets(key, account.limit(call.route.api.quota_api))
            return left[key].pop(0) if left[key] else math.inf

        return slot

    def _ticket_for(self, result: Deferred) -> str | None:
        if result.ticket is None or self._tickets is None:
            return None
        try:
            return self._tickets.issue(result.ticket)
        except (BotoCoreError, ClientError) as exc:  # the slot goes unused; nothing else is lost
            logger.warning("slot ticket not issued", extra={"error": type(exc).__name__})
            return None

    def _hold(
        self, call: PlannedCall, progress: dict[str, _Progress]
    ) -> tuple[float, float] | None:
        """(until when, the shortest hold) if the call may be held for more recipients: it has
        room for more, and none of its records has been held as long as its route allows.
        A record's age counts from when it first reached the relay (SQS's SentTimestamp)."""
        if call.full:
            return None
        now = self._clock()
        until, step = now + 900.0, 900.0
        for group in call.deliveries.values():
            for delivery in group:
                first_seen = progress[delivery.record_id].record.handling.first_seen
                hold = delivery.route.max_hold_seconds
                until = min(until, min(now, first_seen or now) + hold)
                step = min(step, hold / HOLD_STEPS)
        # back on the queue by then: SQS's delay is whole seconds, and the event source
        # mapping may gather it for its window before it is handled
        until -= self._gathering + 1
        # a hold shorter than half a step would only add a deferral
        return (until, step) if until > now and until - now >= step / 2 else None

    def _call(self, call: PlannedCall, *, wait: bool = True) -> CallResult | Deferred:
        account = self._routes.accounts[call.account]
        keys = list(call.deliveries)
        try:
            return self.caller.call(
                call.account,
                account,
                call.route.api,
                call.route.typed_params,
                call.recipients,
                repeat_safe=call.route.repeat_safe,
                wait=wait,
            )
        except (BotoCoreError, ClientError) as exc:  # quota table throttled or unreachable
            logger.warning("call not made", extra={"api": call.route.action, "error": str(exc)})
            reason = f"AWS error before the call: {type(exc).__name__}"
            return CallResult.same_for_all(keys, Outcome.RETRY, reason)
        except Exception as exc:  # the caller catches what can happen after sending
            # the type only: a message may quote the request (a link's URL holds the address)
            logger.error(
                "call not made", extra={"api": call.route.action, "error": type(exc).__name__}
            )
            return CallResult.same_for_all(
                keys, Outcome.RETRY, f"call not made: {type(exc).__name__}"
            )

    def _settle(
        self,
        call: PlannedCall,
        result: CallResult | Deferred,
        progress: dict[str, _Progress],
        claims: Claims,
    ) -> None:
        delivered_keys = []
        if isinstance(result, Deferred) and result.ticket is not None:
            token = self._ticket_for(result)
            if token:  # carried by one of the call's records (_finish picks which)
                ids = [d.record_id for group in call.deliveries.values() for d in group]
                self._issued.append((token, result.retry_at, ids))
        for key, group in call.deliveries.items():
            for delivery in group:
                record = progress[delivery.record_id]
                tag = delivery.route.name
                if isinstance(result, Deferred):
                    # waiting for a slot is bounded by the deferral age alone: a backlog of
                    # hours may send a record round many times
                    record.defer(
                        f"{tag}: {result.reason}",
                        result.retry_at,
                        counted=not result.busy,
                        booked=result.ticket is not None,
                    )
                    continue
                outcome = result.by_recipient[key]
                if outcome.outcome is Outcome.DELIVERED:
                    record.delivered.append(f"{tag}: {outcome.detail}")
                    record.settled.add(tag)
                    delivered_keys.append(delivery.ledger_key)
                elif outcome.outcome is Outcome.REJECTED:
                    record.rejected.append(f"{tag}: {outcome.detail}")
                elif outcome.outcome is Outcome.UNCERTAIN:
                    record.uncertain.append(f"{tag}: {outcome.detail}")
                    record.uncertain_keys.append(delivery.ledger_key)
                    record.settled.add(tag)
                else:
                    record.retry.append(f"{tag}: {outcome.detail}")
        # Whatever happens to the ledger now, these pairs reached the vendor: their claims are
        # never released (a release would let a redelivery call again).
        claims.mine.difference_update(delivered_keys)
        if delivered_keys:
            try:
                self.ledger.remember(delivered_keys)
            except (BotoCoreError, ClientError) as exc:
                # The claims stand until they lapse: a redelivery meanwhile is deferred, and
                # after that a strict pair is settled as uncertain, a Zoho pair answers
                # already_triggered.
                logger.warning(
                    "delivered pairs not remembered",
                    extra={"count": len(delivered_keys), "error": type(exc).__name__},
                )

    def _finish(self, progress: dict[str, _Progress], claims: Claims) -> None:
        """Store uncertain, rejected and deferred records; release the claims of the rest."""
        uncertain = [p for p in progress.values() if p.uncertain]
        uncertain_keys = {k for p in uncertain for k in p.uncertain_keys}
        claims.mine.difference_update(uncertain_keys)
        if uncertain:
            self._store_uncertain(uncertain)
        now = self._clock()
        for p in progress.values():
            if p.retry and (p.settled or p.record.message_id):
                # Partly settled: come back as a copy that knows which routes are left (SQS
                # would redeliver the whole record, which after the ledger's 24 h - a DLQ
                # redrive the next day - would repeat the settled routes). A bundle's member
                # too: SQS would redeliver the whole bundle.
                p.defer(f"{p.retry[-1]} (retried as a copy)", now + RETRY_DELAY_SECONDS)
                p.deferred += p.retry[:-1]
                p.retry.clear()
            if p.status() is Status.DEFERRED:
                too_long = self._limit.exceeded(p.record.handling, now, counted=p.counted)
                if too_long:
                    p.rejected.append(f"{too_long}; last: {p.deferred[-1]}")
                    p.deferred.clear()
        for token, back, record_ids in self._issued:
            # one record carries the booked slot: one that is going back by then (a record in
            # two calls goes back with the later, or may be retried by SQS instead)
            carrier = next(
                (
                    rid
                    for rid in record_ids
                    if progress[rid].status() is Status.DEFERRED
                    and (progress[rid].deferred_until or 0) <= back + 1
                ),
                None,
            )
            if carrier is not None:
                progress[carrier].tickets.append(token)
        self._release(claims.mine)  # pairs not delivered nor uncertain
        self._park(progress)

    def _store_uncertain(self, uncertain: list[_Progress]) -> None:
        """Store records the vendor may have acted on, then mark their pairs in the ledger so
        that no redelivery calls again. Stored first: a failure leaves the claims to lapse and
        the records to come back, when the lapsed claims are settled as uncertain again."""
        keys = [k for p in uncertain for k in p.uncertain_keys]
        try:
            key = self._uncertain.store(
                [
                    p.parked(p.uncertain, p.uncertain_keys, _routes_of(p.uncertain_keys))
                    for p in uncertain
                ]
            )
            logger.warning("uncertain records stored", extra={"count": len(uncertain), "key": key})
            self.ledger.remember(keys, outcome="uncertain")
        except Exception:
            logger.exception("storing uncertain records failed; they come back through SQS")
            for p in uncertain:
                p.retry.append("could not store the uncertain record")
                p.settled.difference_update(_routes_of(p.uncertain_keys))  # not settled yet

    def _release(self, keys: set[str]) -> None:
        if not keys:
            return
        try:
            self.ledger.release(keys)
        except (BotoCoreError, ClientError):  # the claims lapse by themselves; retries wait
            logger.warning("claims not released", extra={"count": len(keys)})

    def _park(self, progress: dict[str, _Progress]) -> None:
        """Store rejected records and re-enqueue deferred ones; on failure they come back."""
        deferred = [p for p in progress.values() if p.status() is Status.DEFERRED]
        # a record with a route rejected and another uncertain is stored in both places
        rejected = [
            p
            for p in progress.values()
            if p.rejected and p.status() in (Status.REJECTED, Status.UNCERTAIN)
        ]
        if deferred:
            try:
                failed = self._deferrals.park([p.parked(p.deferred) for p in deferred])
            except Exception as exc:
                logger.exception("re-enqueue failed; records return through SQS")
                failed = {p.record.record_id: type(exc).__name__ for p in deferred}
            for record_id, why in failed.items():
                progress[record_id].retry.append(f"could not re-enqueue the record: {why}")
        if rejected:
            try:
                key = self._rejected.store([p.parked(p.rejected) for p in rejected])
                logger.info("rejected records stored", extra={"count": len(rejected), "key": key})
            except Exception:
                logger.exception("storing rejected records failed; records return through SQS")
                for p in rejected:
                    p.retry.append("could not store the rejection")


def _routes_of(ledger_keys: list[str]) -> tuple[str, ...]:
    """The route names in ledger keys (``event#route``; route names hold no ``#``)."""
    return tuple(dict.fromkeys(key.rsplit("#", 1)[1] for key in ledger_keys))
