"""Coalescing and bundles at their edges: batched launches, body caps, paid waiting, deferral
counts, bodies that look like bundles, Unicode in bundles, the DLQ redrive, the quota bound."""

from __future__ import annotations

import json
import math

import pytest

from tests.helpers.coalescing import (
    CAPPED,
    SLOW_ACCOUNTS,
    bulk_routes,
    gate_and_key,
    record_parking,
    record_sleeps,
    send_long_signups,
    signup,
    take_the_next_slots,
)
from tests.helpers.relay import ACCOUNTS, FakeAltcraft, relay, route
from trigger_relay.functions import trigger as service
from trigger_relay.pipeline.events import from_sqs_body
from trigger_relay.pipeline.planning import Delivery, plan_calls
from trigger_relay.pipeline.relay import Status
from trigger_relay.stores.quota import Grant

BATCHED = ACCOUNTS + route(
    "batched-launch",
    "altcraft.trigger",
    "{id: 84, custom_request_field: Custom_ID}",
    mapping="{field_value: user.id}",
)


def test_batched_launch_partial_call_is_not_marked_full() -> None:
    """altcraft.trigger with custom_request_field carries up to params.max_values (default
    1000) values per call, but PlannedCall.full compares with api.max_recipients == 1."""
    with relay(BATCHED) as r:
        only = r.routes.routes[0]
        deliveries = []
        for n in range(3):
            event = from_sqs_body(json.dumps(signup(n)), f"m{n}", {})
            deliveries.append(Delivery(f"m{n}", event.event_id, only, only.recipient(event)))
        (call,) = plan_calls(deliveries)
        assert len(call.recipients) == 3 and only.typed_params.max_values == 1000
        assert not call.full, "a call of 3 out of 1000 values is marked full"


def test_batched_launch_partial_call_is_held_while_the_quota_is_busy() -> None:
    vendor = FakeAltcraft()
    with relay(BATCHED, vendor) as r:
        for n in range(3):
            r.send(signup(n))
        records = r.receive_all()
        take_the_next_slots(r)  # another Lambda's call: no slot free now
        report = r.pipeline().process(records)
        # expected: held for a fuller call, like altcraft.bulk_trigger's partial calls
        assert report.held == 3, (report.count(), vendor.requests)


def test_a_call_at_its_body_cap_is_full_and_not_held() -> None:
    """docs/routes.md: "A call that is already full (the API's count, or its body cap) never
    waits for this". One chunk with no room left for even the smallest recipient is full."""
    params = "{trigger_id: 7, max_body_bytes: 1024}"
    vendor = FakeAltcraft()
    with relay(bulk_routes(params=params), vendor) as r:
        only = r.routes.routes[0]
        api, typed = only.api, only.typed_params

        def rec(email: str):
            return only.recipient(
                from_sqs_body(
                    json.dumps({"type": "user.signed_up", "user": {"email": email}}), "x", {}
                )
            )

        smallest = api._item_size(rec("a@b.co"), "json")
        base = len(api.encode(api.document([], typed, "x" * 256), typed.format))
        emails, size, n = [], base, 0
        while typed.max_body_bytes - size >= 70 + 2 * smallest:
            email = f"user{n:03d}@" + "d" * 40 + ".example"
            emails.append(email)
            size += api._item_size(rec(email), "json")
            n += 1
        # the last one fills the rest but for less than the smallest possible recipient
        target = typed.max_body_bytes - size - (smallest - 1)
        last = next(
            f"{'z' * k}@b.co"
            for k in range(1, 64)
            if api._item_size(rec(f"{'z' * k}@b.co"), "json") == target
        )
        emails.append(last)
        size += api._item_size(rec(last), "json")
        assert 0 <= typed.max_body_bytes - size < smallest
        recipients = [rec(e) for e in emails]
        assert len(api.chunk(recipients, typed)) == 1  # one call, nothing else could fit
        assert len(api.chunk([*recipients, rec("a@b.co")], typed)) == 2

        for email in emails:
            r.send({"type": "user.signed_up", "user": {"email": email}})
        records = r.receive_all()
        take_the_next_slots(r)
        report = r.pipeline().process(records)
        assert report.held == 0, "a call at its body cap was held for a fuller call"


def test_a_busy_deferral_is_not_re_enqueued_without_delay_again_and_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call that is not held (its record past max_hold, or a full call) and finds no slot
    within max_wait is deferred to (slot - max_wait - gathering), floored at *now*. With the
    template's batching window (5 s, up to 300) every invocation in the last `gathering`
    seconds before the slot comes within max_wait re-enqueues the record with DelaySeconds 0.
    Lambda invokes as soon as a batch is full (a backlog), so the record goes round and round,
    uncounted, with no progress."""
    parked = record_parking(monkeypatch)
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        r.send(signup(1))
        r.clock.now += 61  # past the route's max_hold (60 s): not held, it waits like any call
        gate, key, limit = gate_and_key(r)
        # other Lambdas' calls fill the schedule to max_wait (10) + gathering (5) - 1 s ahead
        while isinstance(gate.reserve(key, limit, max_wait=14), Grant):
            pass
        rounds = 0
        for _ in range(10):  # ten invocations within 4 s: the batch fills at once in a backlog
            (record,) = r.receive()
            pipeline = r.pipeline()
            pipeline._gathering = 5.0  # the template's TriggerBatchingWindowSeconds default
            report = pipeline.process([record])
            r.acknowledge(report)
            assert report.count() == {Status.DEFERRED: 1} and vendor.requests == 0
            now, rec = parked[-1]
            if math.ceil(rec.retry_at - now) == 0:
                rounds += 1
            r.clock.now += 0.4
        assert rounds <= 1, f"re-enqueued with no delay {rounds} times in 4 s, uncounted"
        assert record.handling.deferrals == 0  # and none of it counts towards MaxDeferrals


def test_one_invocation_does_not_idle_longer_than_max_wait_for_slots() -> None:
    """max_wait_seconds bounds an invocation's idle time for slots in all: full calls waiting
    one after another must not each take the whole of it."""
    accounts = SLOW_ACCOUNTS
    vendor = FakeAltcraft()
    with relay(bulk_routes(params=CAPPED, accounts=accounts), vendor) as r:
        send_long_signups(r, 24)
        records = r.receive_all()
        take_the_next_slots(r)  # a backlog: the next free slot is ~6 s ahead
        pipeline = r.pipeline()
        slept = record_sleeps(r, pipeline)
        report = pipeline.process(records)
        waited = sum(s for s in slept if s > 0.3)  # the waits for slots, not retry pauses
        assert report.calls >= 2
        assert waited <= 10.0, f"idle {waited:.1f} s for slots in one invocation ({slept})"


def test_a_message_whose_body_is_an_empty_bundle_is_not_silently_dropped() -> None:
    """A body that starts with the bundle key but holds no members becomes zero records: the
    message is acknowledged (not a batch item failure) and stored nowhere."""
    body = json.dumps(
        {
            "trigger_relay_bundle": [],
            "type": "user.signed_up",
            "id": "evt-1",
            "user": {"email": "user1@example.com"},
        }
    )
    event = {"Records": [{"messageId": "m-1", "body": body, "attributes": {}}]}
    records = service.sqs_records(event)
    assert records, "the message produced no record: it will be deleted without a trace"


def test_duplicate_bundle_and_duplicate_member_launch_once() -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        for n in (1, 1, 2):  # the producer published evt-1 twice
            r.send(signup(n))
        records = r.receive_all()
        take_the_next_slots(r)
        first = r.pipeline().process(records)
        r.acknowledge(first)
        assert first.held == 3
        r.clock.now += 30
        bundle = r.receive()
        assert len(bundle) == 3 and len({x.message_id for x in bundle}) == 1
        report = r.pipeline().process(bundle + bundle)  # SQS delivered the bundle twice
        assert set(report.count()) == {Status.DELIVERED}
        assert sorted(e for _, e in vendor.launched) == ["user1@example.com", "user2@example.com"]
        again = r.pipeline().process(bundle)
        assert set(again.count()) == {Status.DELIVERED} and vendor.requests == 1


def test_bundles_of_astral_and_escaped_members_fit_sqs() -> None:
    from trigger_relay.pipeline.queue_messages import (
        MAX_MESSAGE_BYTES,
        Attribute,
        Handling,
        Outgoing,
        unbundle,
    )

    bodies = [
        json.dumps(
            {"type": "t", "x": "\U0001f600" * 20_000 + '"\\' * 5_000 + "\u2028"}, ensure_ascii=False
        )
        for _ in range(20)
    ]
    bodies.append("{" + '"a":"' + "é" * 500_000 + '"}')  # a member alone over the limit
    messages = [
        Outgoing(
            b,
            {"bin": Attribute("Binary.x", binary_value=b"\x00\xff" * 100)},
            Handling("e", 1, 1.5, ("r",)),
            3.2,
        )
        for b in bodies
    ]
    packed = Outgoing.bundles(messages)
    assert sorted(i for _, idx in packed for i in idx) == list(range(len(messages)))
    for message, idx in packed:
        _, size = message.entry("0")
        assert size <= MAX_MESSAGE_BYTES
        if len(idx) > 1:
            members = unbundle(message.body)
            assert [m.body for m in members] == [bodies[i] for i in idx]
            assert all(m.attributes["bin"].binary_value == b"\x00\xff" * 100 for m in members)


def test_waiting_for_slots_up_to_the_deadline_is_not_counted_as_deferrals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/operations.md: "waiting for a quota slot or held for a fuller call is not counted"
    towards MaxDeferrals. Full calls that waited for their slots one after another use up the
    invocation; the calls left are deferred as "slot after this invocation's deadline" (or "no
    time left"), counted: in a long backlog a record is rejected "deferred too long" after
    MaxDeferrals invocations that ran out of time waiting for the quota."""
    parked = record_parking(monkeypatch)
    accounts = SLOW_ACCOUNTS
    with relay(
        bulk_routes(params=CAPPED, accounts=accounts),
        FakeAltcraft(),
    ) as r:
        send_long_signups(r, 24)
        records = r.receive_all()
        take_the_next_slots(r)
        pipeline = r.pipeline(seconds_left=12.0)
        record_sleeps(r, pipeline)
        pipeline.process(records)
        counted = [rec for _, rec in parked if rec.counted]
        assert not counted, sorted({reason for rec in counted for reason in rec.reasons})


def test_dlq_redrive_keeps_a_bundle_a_bundle() -> None:
    from trigger_relay.pipeline.queue_messages import Handling, Outgoing
    from trigger_relay_cli.operations import _as_same_event

    members = [Outgoing(json.dumps(signup(n)), {}, Handling(f"evt-{n}", 2, 1.0)) for n in (1, 2)]
    ((bundle, _),) = Outgoing.bundles(members)
    body, attributes = bundle.wire()
    dlq_message = {
        "MessageId": "dlq-1",
        "Body": body,
        "MessageAttributes": {k: a.to_sqs() for k, a in attributes.items()},
    }
    body2, _attributes2 = _as_same_event(dlq_message).wire()
    raw = {"messageId": "new-1", "body": body2, "messageAttributes": {}, "attributes": {}}
    records = service.sqs_records({"Records": [raw]})
    assert [r.handling.event_id for r in records] == ["evt-1", "evt-2"]


@pytest.mark.parametrize("calls,window", [(100, 300), (500, 300), (600, 60), (2, 10), (3, 5)])
def test_any_window_bound_with_adversarial_lateness(calls: int, window: int) -> None:
    """Slots T apart; every call but one on time and one late by the whole margin plus just
    under T/2 (clock skew and lateness together): no vendor window of W holds calls + 1."""
    from trigger_relay.stores.quota import Limit

    limit = Limit(calls=calls, window_seconds=window)
    t, m = limit.interval_ms, int(limit.safety_margin_seconds * 1000)
    slots = [k * t for k in range(3 * calls)]
    for late in range(len(slots) - calls):
        arrivals = sorted(s + (m + t // 2 - 1 if k == late else 0) for k, s in enumerate(slots))
        j = 0
        for i, a in enumerate(arrivals):  # closed windows [a, a + W]
            while j < len(arrivals) and arrivals[j] <= a + window * 1000:
                j += 1
            assert j - i <= calls
        if late > 3:
            break


def test_a_held_record_is_handled_within_max_hold_of_first_reaching_the_relay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQS's DelaySeconds is whole seconds, and the event source mapping may gather a record
    for its window: a hold ends that much before max_hold, or the record is not held."""
    parked = record_parking(monkeypatch)
    with relay(bulk_routes(), FakeAltcraft()) as r:  # max_hold_seconds: 60 (default)
        r.send(signup(1))
        (record,) = r.receive()
        first_seen = record.handling.first_seen
        assert first_seen is not None
        for age in (0.0, 20.0, 45.0, 51.3, 55.0):
            r.clock.now = first_seen + age
            take_the_next_slots(r)
            pipeline = r.pipeline()
            pipeline._gathering = 5.0  # the template's TriggerBatchingWindowSeconds default
            report = pipeline.process([record])
            if not report.held:
                assert age > 60 - 5 - 1 - 10 / 2  # too little hold left to be worth one
                continue
            now, rec = parked[-1]
            visible_at = now + math.ceil(rec.retry_at - now)  # DelaySeconds is whole seconds
            assert visible_at + 5.0 <= first_seen + 60


def test_a_record_with_a_future_first_seen_is_still_bounded_by_its_age() -> None:
    """Handling comes from the message's ``trigger_relay`` attribute, which any producer may
    set: a first_seen in the future is taken as now, so the deferral age still ends a wait."""
    from trigger_relay.stores.parking import DeferralLimit

    vendor = FakeAltcraft()
    with relay(bulk_routes("max_hold_seconds: 0"), vendor) as r:
        r.deferral_limit = DeferralLimit(max_deferrals=2, max_age_seconds=3600)
        future = json.dumps({"id": "evt-1", "t0": r.clock.now + 10**9})
        r.send(signup(1), {"trigger_relay": {"DataType": "String", "StringValue": future}})
        (record,) = r.receive()
        assert record.handling.first_seen is not None
        assert record.handling.first_seen <= r.clock.now + 60
        gate, key, limit = gate_and_key(r)
        statuses = []
        for _ in range(6):  # 6 x 3 h: far past MaxDeferralAgeSeconds
            while isinstance(gate.reserve(key, limit), Grant):
                pass
            report = r.pipeline().process([record])
            statuses.append(next(iter(report.statuses.values())))
            if statuses[-1] is not Status.DEFERRED:
                break
            r.acknowledge(report)
            (record,) = r.receive()
            r.clock.now += 3 * 3600
        assert statuses[-1] is Status.REJECTED and vendor.requests == 0
