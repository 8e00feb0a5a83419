"""Slots booked for records sent back to the queue: a full call whose slot is further ahead than
its invocation may wait keeps the slot, and the records bring it back. Counted at the fake
vendor and in the quota item: a ticket never adds a call to the schedule, is used at most once,
only in its slot, and only if the relay issued it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.helpers.coalescing import (
    BULK,
    SLOW_ACCOUNTS,
    bulk_routes,
    gate_and_key,
    record_parking,
    record_sleeps,
    signup,
)
from tests.helpers.relay import FakeAltcraft, Relay, relay, route
from trigger_relay.pipeline.queue_messages import HANDLING_ATTRIBUTE, Handling
from trigger_relay.pipeline.relay import InboundRecord, Status
from trigger_relay.pipeline.vendor_calls import BOOKED_LEAD_SECONDS
from trigger_relay.stores.ledger import DeliveryLedger
from trigger_relay.stores.quota import Grant, QuotaGate
from trigger_relay.stores.tickets import SlotTickets, Ticket

BACKLOG_SECONDS = 20.0  # other Lambdas hold the slots this far ahead: more than max_wait (10 s)


def keep_busy(r: Relay, seconds: float = BACKLOG_SECONDS, index: int = 0) -> None:
    """Other Lambdas take every slot of route ``index``'s API up to ``seconds`` ahead."""
    gate, key, limit = gate_and_key(r, index)
    while isinstance(gate.reserve(key, limit, max_wait=seconds), Grant):
        pass


@contextmanager
def backlogged(vendor: FakeAltcraft) -> Iterator[Relay]:
    """A relay that books slots, on an API whose next free slot is 20 s away."""
    with relay(bulk_routes("max_hold_seconds: 0", accounts=SLOW_ACCOUNTS), vendor) as r:
        r.tickets = True
        keep_busy(r)
        yield r


def granted(r: Relay) -> int:
    _, key, _ = gate_and_key(r)
    item = r.aws["dynamodb"].get_item(TableName="quota", Key={"pk": {"S": key}})["Item"]
    return int(item["granted"]["N"])


def book(r: Relay, seen: list) -> tuple[Ticket, float]:
    """Send a signup and handle it: its slot is booked; returns the ticket and the delay."""
    r.send(signup(1))
    before = granted(r)
    (record,) = r.receive()
    report = r.pipeline().process([record])
    r.acknowledge(report)
    assert report.statuses[record.record_id] is Status.DEFERRED
    assert granted(r) == before + 1  # one slot reserved: the booked one
    (at, parked) = seen[-1]
    (token,) = parked.handling.tickets
    ticket = SlotTickets("quota", r.aws["dynamodb"]).check(token)
    assert ticket is not None
    return ticket, parked.retry_at - at


def test_a_booked_slot_comes_back_with_its_records_and_is_used_without_reserving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = FakeAltcraft()
    with backlogged(vendor) as r:
        seen = record_parking(monkeypatch)
        start = r.clock.now
        ticket, delay = book(r, seen)
        assert BACKLOG_SECONDS - 1 < ticket.slot_at - start < BACKLOG_SECONDS + 4
        # back just before its slot, not after a wait in a billed Lambda
        assert delay == pytest.approx(ticket.slot_at - start - BOOKED_LEAD_SECONDS, abs=0.01)
        assert vendor.requests == 0
        r.clock.now = start + delay
        before = granted(r)
        (record,) = r.receive()
        pipeline = r.pipeline()
        slept = record_sleeps(r, pipeline)
        report = pipeline.process([record])
        assert report.statuses[record.record_id] is Status.DELIVERED
        assert granted(r) == before  # the booked slot, not a new one
        assert sum(slept) == pytest.approx(BOOKED_LEAD_SECONDS, abs=0.01)
        assert r.clock.now == pytest.approx(ticket.slot_at)  # called in its slot
        assert vendor.launched == [("7", "user1@example.com")]
        assert pipeline.caller.tickets_used == 1


def test_a_ticket_the_relay_did_not_issue_is_ignored() -> None:
    vendor = FakeAltcraft()
    with backlogged(vendor) as r:
        _, key, _ = gate_and_key(r)
        other = SlotTickets("quota", r.aws["dynamodb"])
        other._secret = b"a producer's guess" * 2
        tokens = (
            other.issue(Ticket(key, r.clock.now)),  # signed with another secret
            f"{round(r.clock.now * 1000)}.{'0' * 64}.{key}",
            "not a ticket",
        )
        for n, token in enumerate(tokens):
            handling = json.dumps({"tk": token})
            r.send(
                signup(n),
                {HANDLING_ATTRIBUTE: {"DataType": "String", "StringValue": handling}},
            )
        before = granted(r)
        records = r.receive_all()
        report = r.pipeline().process(records)
        # reserved like any call: the slot 20 s away is booked, nothing is sent now
        assert set(report.statuses.values()) == {Status.DEFERRED}
        assert granted(r) == before + 1
        assert vendor.requests == 0


def test_a_ticket_past_its_slot_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = FakeAltcraft()
    with backlogged(vendor) as r:
        seen = record_parking(monkeypatch)
        ticket, _ = book(r, seen)
        r.clock.now = ticket.slot_at + 5  # back too late: another caller's slot follows
        before = granted(r)
        (record,) = r.receive()
        pipeline = r.pipeline()
        record_sleeps(r, pipeline)
        report = pipeline.process([record])
        assert report.statuses[record.record_id] is Status.DELIVERED
        assert granted(r) == before + 1  # a slot of its own
        assert pipeline.caller.tickets_used == 0


def test_a_copy_whose_claim_another_invocation_holds_neither_uses_nor_carries_the_ticket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = FakeAltcraft()
    with backlogged(vendor) as r:
        seen = record_parking(monkeypatch)
        _, delay = book(r, seen)
        r.clock.now += delay
        (record,) = r.receive()
        # SQS gave the same message to another invocation, which holds the claim
        ledger = DeliveryLedger("ledger", r.aws["dynamodb"], r.clock, hold_seconds=60)
        route = r.routes.routes[0].name
        claims = ledger.claim([f"{record.handling.event_id}#{route}"], set())
        assert claims.mine
        before = granted(r)
        pipeline = r.pipeline()
        report = pipeline.process([record])
        assert report.statuses[record.record_id] is Status.DEFERRED
        assert vendor.requests == 0 and granted(r) == before
        assert pipeline.caller.tickets_used == 0
        assert seen[-1][1].handling.tickets == ()  # the copy goes back without it


def test_a_lock_recorded_after_booking_stops_the_ticket(monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = FakeAltcraft()
    with backlogged(vendor) as r:
        seen = record_parking(monkeypatch)
        _, delay = book(r, seen)
        _, key, limit = gate_and_key(r)
        # another Lambda's call was answered with a lock meanwhile
        QuotaGate("quota", r.aws["dynamodb"], r.clock).record_lock(key, limit.lock_seconds)
        r.clock.now += delay
        (record,) = r.receive()
        pipeline = r.pipeline()
        report = pipeline.process([record])
        assert report.statuses[record.record_id] is Status.DEFERRED
        assert vendor.requests == 0
        assert pipeline.caller.tickets_used == 0
        assert "vendor lock recorded" in report.reasons[record.record_id][0]


def test_without_time_to_wait_for_a_booked_slot_nothing_is_booked() -> None:
    """A batching window longer than max_wait less the lead: records sent back could not be
    waited for in time, so slots are not booked (a denial, as without tickets)."""
    vendor = FakeAltcraft()
    with backlogged(vendor) as r:
        r.gathering_seconds = 8.0  # + the 3 s lead > max_wait (10 s)
        r.send(signup(1))
        before = granted(r)
        (record,) = r.receive()
        report = r.pipeline().process([record])
        assert report.statuses[record.record_id] is Status.DEFERRED
        assert granted(r) == before
        assert vendor.requests == 0


class Timed:
    """The fake vendor, recording the fake clock at each request; ``during`` runs inside the
    first request (another Lambda acting while a call is on the wire)."""

    def __init__(self, r: Relay, vendor: FakeAltcraft, answers=None, during=None) -> None:  # type: ignore[no-untyped-def]
        self.r, self.vendor, self.at = r, vendor, []  # type: ignore[var-annotated]
        self.answers, self.during = list(answers or []), during

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.at.append(self.r.clock.now)
        if self.during is not None:
            during, self.during = self.during, None
            during()
        if self.answers:
            self.vendor.requests += 1
            return self.answers.pop(0)
        return self.vendor(request)


TWO_BULK_ROUTES = (
    SLOW_ACCOUNTS
    + route("welcome-bulk", BULK, "{trigger_id: 7}", extra="max_hold_seconds: 0")
    + route("welcome-bulk-2", BULK, "{trigger_id: 8}", extra="max_hold_seconds: 0")
)


def test_two_invocations_holding_different_routes_of_the_record_spend_each_slot_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQS handed the message to two invocations, and their claims split the record's two
    (event, route) pairs: both bring the record's two tickets; each booked slot is spent
    once, and no call is made outside a slot."""
    vendor = FakeAltcraft()
    with relay(TWO_BULK_ROUTES, vendor) as r:
        r.tickets = True
        keep_busy(r)
        timed = Timed(r, vendor)
        r.vendor = timed
        seen = record_parking(monkeypatch)
        r.send(signup(1))
        (record,) = r.receive()
        before = granted(r)
        r.acknowledge(r.pipeline().process([record]))
        assert granted(r) == before + 2  # both routes' calls booked
        checker = SlotTickets("quota", r.aws["dynamodb"])
        (parked,) = [p for _, p in seen]
        slots = sorted(checker.check(t).slot_at for t in parked.handling.tickets)  # type: ignore[union-attr]
        assert len(slots) == 2
        r.clock.now = slots[0] - BOOKED_LEAD_SECONDS
        (record,) = r.receive(visibility=0)
        event = record.handling.event_id
        other = DeliveryLedger("ledger", r.aws["dynamodb"], r.clock, hold_seconds=60)
        assert other.claim([f"{event}#welcome-bulk-2"], set()).mine
        a = r.pipeline()
        record_sleeps(r, a)
        a.process([record])  # holds welcome-bulk only
        other.release([f"{event}#welcome-bulk-2"])
        b = r.pipeline()
        record_sleeps(r, b)
        b.process([record])  # holds welcome-bulk-2: brings the same two tickets
        assert granted(r) == before + 2  # no slot reserved beyond the two booked
        assert len(timed.at) == 2
        assert [round(t - s, 3) for t, s in zip(sorted(timed.at), slots, strict=True)] == [0, 0]


def test_a_duplicate_after_the_holder_released_its_claim_does_not_spend_the_slot_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = FakeAltcraft()
    with backlogged(vendor) as r:
        rejected = httpx.Response(400, json={"error": 400, "error_text": "bad recipient"})
        timed = Timed(r, vendor, answers=[rejected, rejected])
        r.vendor = timed
        seen = record_parking(monkeypatch)
        ticket, _ = book(r, seen)
        r.clock.now = ticket.slot_at - BOOKED_LEAD_SECONDS
        (record,) = r.receive(visibility=0)
        first = r.pipeline()
        record_sleeps(r, first)
        assert first.process([record]).statuses[record.record_id] is Status.REJECTED
        r.clock.now += 0.3  # SQS's duplicate reaches another invocation, within the lateness
        (duplicate,) = r.receive()
        before = granted(r)
        second = r.pipeline()
        record_sleeps(r, second)
        second.process([duplicate])
        assert second.caller.tickets_used == 0
        # the duplicate's call, if any, is in a slot of its own
        assert len(timed.at) <= 1 + (granted(r) - before)


def test_a_lock_recorded_while_an_invocation_holds_two_tickets_stops_the_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = FakeAltcraft()
    launch = SLOW_ACCOUNTS.replace("altcraft.bulk_trigger", "altcraft.trigger") + route(
        "welcome-launch", "altcraft.trigger", "{id: 84}", extra="max_hold_seconds: 0"
    )
    with relay(launch, vendor) as r:
        r.tickets = True
        keep_busy(r)
        _, key, limit = gate_and_key(r)
        seen = record_parking(monkeypatch)
        r.send(signup(1))
        r.send(signup(2))
        report = r.pipeline().process(r.receive_all())
        r.acknowledge(report)
        checker = SlotTickets("quota", r.aws["dynamodb"])
        slots = sorted(
            checker.check(t).slot_at  # type: ignore[union-attr]
            for _, p in seen
            for t in p.handling.tickets
        )
        assert len(slots) == 2

        def another_lambda_is_locked_out() -> None:
            QuotaGate("quota", r.aws["dynamodb"], r.clock).record_lock(key, limit.lock_seconds)

        timed = Timed(r, vendor, during=another_lambda_is_locked_out)
        r.vendor = timed
        r.clock.now = slots[0] - BOOKED_LEAD_SECONDS
        pipeline = r.pipeline()
        record_sleeps(r, pipeline)
        pipeline.process(r.receive_all())
        assert len(timed.at) == 1  # the lock recorded during the first call stops the second


@pytest.mark.parametrize(
    "token", ["1.\u00e9.altcraft#ac#x", "\u00b2.00.altcraft#ac#x", "1." + "\u00e9" * 64 + ".k", ""]
)
def test_a_malformed_ticket_fails_nothing_but_itself(token: str) -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        r.tickets = True
        r.send(signup(1))
        handling = json.dumps({"tk": token})
        r.send(signup(2), {HANDLING_ATTRIBUTE: {"DataType": "String", "StringValue": handling}})
        report = r.pipeline().process(r.receive_all())
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert sorted(e for _, e in vendor.launched) == ["user1@example.com", "user2@example.com"]


def test_a_record_in_two_booked_calls_carries_one_ticket_and_another_record_the_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = FakeAltcraft()
    with relay(TWO_BULK_ROUTES, vendor) as r:
        r.tickets = True
        keep_busy(r)
        seen = record_parking(monkeypatch)
        r.send(signup(1))
        r.send(signup(2))
        before = granted(r)
        report = r.pipeline().process(r.receive_all())
        r.acknowledge(report)
        assert granted(r) == before + 2  # the two routes' calls, each booked
        tickets = [t for _, p in seen for t in p.handling.tickets]
        assert len(tickets) == 2 and len(set(tickets)) == 2


# every signup goes to trigger 7; a VIP's also to trigger 8 (same API, same schedule)
VIP_BULK = route(
    "vip-bulk",
    BULK,
    "{trigger_id: 8}",
    match="{type: user.signed_up, fields: {user.vip: true}}",
    extra="max_hold_seconds: 0",
)
VIP_ROUTES = (
    SLOW_ACCOUNTS
    + route("welcome-bulk", BULK, "{trigger_id: 7}", extra="max_hold_seconds: 0")
    + VIP_BULK
)


def test_the_ticket_of_a_booked_call_travels_with_its_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Call A (trigger 7) carries R1, R2, R3; call B (trigger 8) carries R1 only. Both are
    booked. Every record comes back for A's slot, R1 with both tickets: A and B are made in
    their booked slots, and nothing is booked again."""
    vendor = FakeAltcraft()
    with relay(VIP_ROUTES, vendor) as r:
        r.tickets = True
        keep_busy(r)
        seen = record_parking(monkeypatch)
        r.send(signup(1, vip=True))
        r.send(signup(2))
        r.send(signup(3))
        before = granted(r)
        report = r.pipeline().process(r.receive_all())
        r.acknowledge(report)
        assert set(report.statuses.values()) == {Status.DEFERRED}
        assert granted(r) == before + 2  # A and B booked
        checker = SlotTickets("quota", r.aws["dynamodb"])
        slot_a = min(
            checker.check(t).slot_at  # type: ignore[union-attr]
            for _, p in seen
            for t in p.handling.tickets
        )
        parked = {p.handling.event_id: (p.retry_at, len(p.handling.tickets)) for _, p in seen}
        # meanwhile other Lambdas keep the schedule a minute deep, as under a backlog
        keep_busy(r, 60)
        # A's records due back before A's slot
        r.clock.now = slot_a - BOOKED_LEAD_SECONDS
        due = {e for e, (at, _) in parked.items() if at <= r.clock.now}
        records = [x for x in r.receive_all() if x.handling.event_id in due]
        before = granted(r)
        pipeline = r.pipeline()
        record_sleeps(r, pipeline)
        second = pipeline.process(records)
        assert sorted(due) == ["evt-1", "evt-2", "evt-3"]
        assert second.count()[Status.DELIVERED] == 3
        assert vendor.requests == 2 and pipeline.caller.tickets_used == 2
        assert granted(r) == before  # both calls in their booked slots


# two APIs of one account, each with Zoho Marketing Automation's limit (slots ~3 s apart)
TWO_APIS = (
    SLOW_ACCOUNTS.replace(
        "max_wait_seconds: 10}}}",
        "max_wait_seconds: 10}, altcraft.trigger: "
        "{calls: 100, window_seconds: 300, max_wait_seconds: 10}}}",
    )
    + route(
        "bulk",
        BULK,
        "{trigger_id: 7}",
        match="{type: user.signed_up, fields: {user.plan: bulk}}",
        extra="max_hold_seconds: 0",
    )
    + route(
        "launch",
        "altcraft.trigger",
        "{id: 84}",
        match="{type: user.signed_up, fields: {user.plan: launch}}",
        extra="max_hold_seconds: 0",
    )
)


def test_two_tickets_in_one_batch_are_both_used_in_their_slots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records of two APIs, each booked, come back in one batch (the batching window gathers
    them): each is used in its slot (calls with a booked slot go first, in slot order)."""
    timed: list[float] = []
    vendor = FakeAltcraft()
    with relay(TWO_APIS, vendor) as r:
        r.tickets = True

        def timing(request):  # type: ignore[no-untyped-def]
            timed.append(r.clock.now)
            return vendor(request)

        r.vendor = timing
        bulk_key, launch_key = gate_and_key(r, 0)[1], gate_and_key(r, 1)[1]
        keep_busy(r, 20)
        keep_busy(r, 22, index=1)
        seen = record_parking(monkeypatch)
        r.send(signup(1, plan="launch"))
        r.send(signup(2, plan="bulk"))
        first = r.pipeline().process(r.receive_all())
        r.acknowledge(first)
        assert set(first.statuses.values()) == {Status.DEFERRED}
        checker = SlotTickets("quota", r.aws["dynamodb"])
        slots = {
            checker.check(t).quota_key: checker.check(t).slot_at  # type: ignore[union-attr]
            for _, p in seen
            for t in p.handling.tickets
        }
        assert set(slots) == {bulk_key, launch_key}
        gap = slots[launch_key] - slots[bulk_key]
        assert 0.75 < gap < 7  # the launch slot is later, within the wait of a fresh batch
        # meanwhile other Lambdas keep both schedules a minute deep, as under a backlog
        keep_busy(r, 60)
        # both back in one batch before the earlier slot, the launch record first
        r.clock.now = slots[bulk_key] - BOOKED_LEAD_SECONDS
        records = sorted(r.receive_all(), key=lambda x: x.handling.event_id)
        assert [x.handling.event_id for x in records] == ["evt-1", "evt-2"]
        pipeline = r.pipeline()
        record_sleeps(r, pipeline)
        second = pipeline.process(records)
        assert pipeline.caller.tickets_used == 2 and pipeline.caller.booked == 0
        assert set(second.statuses.values()) == {Status.DELIVERED}
        assert [round(t - s, 3) for t, s in zip(timed, sorted(slots.values()), strict=True)] == [
            0,
            0,
        ]


def fill_until(gate: QuotaGate, key: str, limit, at: float) -> float:  # type: ignore[no-untyped-def]
    """Other Lambdas reserve until the next free slot is at ``at`` or later; returns it."""
    while True:
        grant = gate.reserve(key, limit, max_wait=120)
        assert isinstance(grant, Grant)
        if grant.slot_at >= at:
            return grant.slot_at


def brought(n: int, tokens: tuple[str, ...], **user: object) -> InboundRecord:
    return InboundRecord(f"m-{n}", json.dumps(signup(n, **user)), handling=Handling(tickets=tokens))


@pytest.mark.parametrize("first", ["a stale ticket", "a call of the same API without one"])
def test_a_call_that_will_not_use_a_ticket_does_not_go_first(first: str) -> None:
    """Calls go first only with a slot they will use: a call of the bulk API that must wait
    for a new slot (its ticket is stale, or the API's one ticket is another call's) goes
    after the launch call, whose booked slot would be too late after that wait."""
    vendor = FakeAltcraft()
    with relay(TWO_APIS + VIP_BULK, vendor) as r:
        r.tickets = True
        bulk_gate, bulk_key, bulk_limit = gate_and_key(r, 0)
        launch_gate, launch_key, launch_limit = gate_and_key(r, 1)
        signer = SlotTickets("quota", r.aws["dynamodb"])
        now = r.clock.now
        records = []
        if first == "a stale ticket":
            launch_slot = fill_until(launch_gate, launch_key, launch_limit, now + 3)
            fill_until(bulk_gate, bulk_key, bulk_limit, now + 5.5)
            records.append(brought(1, (signer.issue(Ticket(bulk_key, now - 30)),), plan="bulk"))
            expected = 1
        else:
            bulk_slot = fill_until(bulk_gate, bulk_key, bulk_limit, now + 3)
            launch_slot = fill_until(launch_gate, launch_key, launch_limit, now + 4.5)
            fill_until(bulk_gate, bulk_key, bulk_limit, now + 5.5)
            records.append(brought(1, (signer.issue(Ticket(bulk_key, bulk_slot)),), plan="bulk"))
            records.append(brought(3, (), vip=True))
            expected = 2
        records.append(brought(2, (signer.issue(Ticket(launch_key, launch_slot)),), plan="launch"))
        pipeline = r.pipeline()
        record_sleeps(r, pipeline)
        report = pipeline.process(records)
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert pipeline.caller.tickets_used == expected


@pytest.mark.parametrize(
    "messages,batch_size,books",
    [(3, "1000", True), (1000, "1000", False), (1, "1", False), (None, "1000", False)],
    ids=["partial batch", "full batch", "batch of one", "direct invocation"],
)
def test_slots_are_booked_only_when_the_batch_was_not_full(
    monkeypatch: pytest.MonkeyPatch, messages: int | None, batch_size: str, books: bool
) -> None:
    """A full batch says a backlog may be waiting in the queue: records sent back behind it
    would be polled after their booked slot, and the slot would pass unused."""
    from tests.conftest import ROOT
    from trigger_relay.functions import trigger

    env = {
        "QUOTA_TABLE": "q",
        "LEDGER_TABLE": "l",
        "INGEST_QUEUE_URL": "u",
        "REJECTED_BUCKET": "b",
        "ROUTES_FILE": str(ROOT / "layers" / "common" / "routes.yaml"),
        "BATCH_SIZE": batch_size,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen: dict[str, bool] = {}

    class Built(Exception):
        pass

    def build(settings: object, context: object, *, book_ahead: bool = False) -> None:
        seen["book_ahead"] = book_ahead
        raise Built

    monkeypatch.setattr(trigger, "build_pipeline", build)
    with pytest.raises(Built):
        trigger.run([], None, messages=messages)
    assert seen["book_ahead"] is books
