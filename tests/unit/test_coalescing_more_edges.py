"""Coalescing, second pass at its edges: first_seen values a producer may send, calls counted
as made, slots past the deadline, bodies that look like bundles, parking a refused bundle."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

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
from tests.helpers.relay import ACCOUNTS, FakeAltcraft, relay
from trigger_relay.functions import trigger as service
from trigger_relay.pipeline.queue_messages import Handling, Outgoing, unbundle
from trigger_relay.pipeline.relay import HELD, Status
from trigger_relay.stores.parking import DeferralLimit, Deferrals, ParkedRecord
from trigger_relay.stores.quota import Grant


def handling_attr(document: str) -> dict[str, Any]:
    return {"trigger_relay": {"DataType": "String", "StringValue": document}}


def test_nan_first_seen_is_clamped_when_read() -> None:
    raw = {
        "messageId": "m-1",
        "body": json.dumps(signup(1)),
        "messageAttributes": {
            "trigger_relay": {"dataType": "String", "stringValue": '{"id":"evt-1","t0":NaN}'}
        },
        "attributes": {"SentTimestamp": "1700000000000"},
    }
    (record,) = service.sqs_records({"Records": [raw]})
    first_seen = record.handling.first_seen
    assert first_seen is not None and math.isfinite(first_seen), first_seen


def test_nan_first_seen_record_is_not_held_past_max_hold() -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:  # max_hold_seconds 60 (default)
        r.send(signup(1), handling_attr('{"id":"evt-1","t0":NaN}'))
        statuses = []
        for _ in range(10):  # 10 x 120 s, the next two slots taken each time
            (record,) = r.receive()
            take_the_next_slots(r)
            report = r.pipeline().process([record])
            r.acknowledge(report)
            statuses.append((report.held, next(iter(report.statuses.values()))))
            if report.statuses[record.record_id] is not Status.DEFERRED:
                break
            r.clock.now += 120
        assert vendor.requests == 1, f"held 20 min with max_hold 60 s: {statuses}"


def test_nan_first_seen_record_is_still_bounded_by_its_age() -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes("max_hold_seconds: 0"), vendor) as r:
        r.deferral_limit = DeferralLimit(max_deferrals=2, max_age_seconds=3600)
        r.send(signup(1), handling_attr('{"id":"evt-1","t0":NaN}'))
        (record,) = r.receive()
        gate, key, limit = gate_and_key(r)
        statuses = []
        for _ in range(6):  # 6 x 3 h: far past max_age_seconds
            while isinstance(gate.reserve(key, limit), Grant):
                pass
            report = r.pipeline().process([record])
            statuses.append(report.statuses[record.record_id])
            if statuses[-1] is not Status.DEFERRED:
                break
            r.acknowledge(report)
            (record,) = r.receive()
            r.clock.now += 3 * 3600
        assert statuses[-1] is Status.REJECTED, f"{statuses}; t0={record.handling.first_seen}"


def test_report_calls_does_not_count_a_call_never_made() -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        r.send(signup(1))
        records = r.receive()
        pipeline = r.pipeline()

        def throttled(*_a: object, **_k: object) -> None:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}
            raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]

        pipeline.caller.quota.reserve = throttled  # type: ignore[method-assign]
        report = pipeline.process(records)
        assert vendor.requests == 0
        assert (report.calls, report.recipients) == (0, 0)


def test_report_calls_counts_a_call_the_vendor_answered_with_a_lock() -> None:
    vendor = FakeAltcraft(faults=[httpx.Response(429, headers={"Retry-After": "30"})])
    with relay(bulk_routes(), vendor) as r:
        r.send(signup(1))
        report = r.pipeline().process(r.receive())
        assert vendor.requests == 1 and report.count() == {Status.DEFERRED: 1}
        assert (report.calls, report.recipients) == (1, 1)


def test_unbundle_accepts_real_members_with_extra_keys() -> None:
    members = [Outgoing(json.dumps(signup(n)), {}, Handling(f"evt-{n}", 1, 1.0)) for n in (1, 2)]
    ((bundle, _),) = Outgoing.bundles(members)
    document = json.loads(bundle.body)
    for m in document["trigger_relay_bundle"]:
        m["future_field"] = 1
    out = unbundle(json.dumps(document, separators=(",", ":")))
    assert out is not None and [m.handling.event_id for m in out] == ["evt-1", "evt-2"]


def test_a_producer_body_whose_member_body_is_an_object_is_kept_as_sent() -> None:
    body = json.dumps(
        {"trigger_relay_bundle": [{"body": {"type": "user.signed_up", "id": "evt-9"}}]},
        separators=(",", ":"),
    )
    raw = {"messageId": "m-1", "body": body, "attributes": {"SentTimestamp": "1700000000000"}}
    (record,) = service.sqs_records({"Records": [raw]})
    assert record.body == body, f"the producer's body became {record.body!r}"


class StubSQS:
    """SendMessageBatch that refuses entries per call (0: the first send, 1: the retry)."""

    def __init__(self, refuse: list[Any]) -> None:
        self.refuse = refuse
        self.calls = 0
        self.sent: list[str] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        refuse = self.refuse[min(self.calls, len(self.refuse) - 1)]
        self.calls += 1
        failed = [e for e in Entries if refuse(e["MessageBody"])]
        self.sent += [e["MessageBody"] for e in Entries if e not in failed]
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in failed],
            "Failed": [{"Id": e["Id"], "Code": "X", "SenderFault": False} for e in failed],
        }


def parked(n: int, retry_at: float) -> ParkedRecord:
    return ParkedRecord(f"r{n}", f"body-{n}", {}, ["x"], retry_at, Handling(f"evt-{n}", 0, 1.0))


@pytest.mark.parametrize(
    "first,second,expected",
    [
        # two bundles and a single refused; one member of the second bundle refused again
        (lambda b: True, lambda b: b == "body-3", {"r3", "r4"}),
        # a bundle and a single refused; the first member refused again
        (lambda b: "body-0" in b or b == "body-4", lambda b: b == "body-0", {"r0", "r4"}),
        # both bundles refused, every single accepted
        (lambda b: b.startswith('{"trigger'), lambda b: False, set()),
    ],
)
def test_parking_retries_refused_bundles_member_by_member(first, second, expected) -> None:
    client = StubSQS([first, second])
    deferrals = Deferrals("q", client, clock=lambda: 100.0)  # type: ignore[arg-type]
    records = [parked(0, 110), parked(1, 110), parked(2, 120), parked(3, 120), parked(4, 130)]
    failed = deferrals.park(records)
    assert set(failed) == expected
    delivered = {f"body-{n}" for n in range(5)} - {f"body-{r[1:]}" for r in expected}
    seen = set()
    for body in client.sent:
        members = unbundle(body)
        seen |= {m.body for m in members} if members else {body}
    assert seen == delivered


@pytest.mark.parametrize(
    "limits,seconds_left,depth",
    [
        # max_wait_seconds above the invocation's deadline window: every round
        ("{calls: 100, window_seconds: 300, max_wait_seconds: 60}", 20.0, 30.0),
        # the default max_wait (10 s), a call late in its invocation (8 s before its deadline)
        ("{calls: 100, window_seconds: 300}", 8.0, 6.5),
    ],
)
def test_a_slot_past_the_deadline_is_not_reserved(
    limits: str, seconds_left: float, depth: float
) -> None:
    accounts = ACCOUNTS.replace(
        'base_url: "https://ac.example.com"}',
        'base_url: "https://ac.example.com", limits: {altcraft.bulk_trigger: ' + limits + "}}",
    )
    vendor = FakeAltcraft()
    with relay(bulk_routes("max_hold_seconds: 0", accounts=accounts), vendor) as r:
        r.deferral_limit = DeferralLimit(max_deferrals=2, max_age_seconds=6 * 3600)
        r.send(signup(1))
        gate, key, limit = gate_and_key(r)
        dynamodb = r.aws["dynamodb"]

        def granted() -> int:
            item = dynamodb.get_item(TableName="quota", Key={"pk": {"S": key}}).get("Item", {})
            return int(item.get("granted", {"N": "0"})["N"])

        rounds = []
        for _ in range(5):
            # other Lambdas keep a backlog `depth` s deep
            while isinstance(gate.reserve(key, limit, max_wait=depth), Grant):
                pass
            (record,) = r.receive()
            before = granted()
            report = r.pipeline(seconds_left=seconds_left).process([record])
            r.acknowledge(report)
            status = report.statuses[record.record_id]
            rounds.append((status, granted() - before, record.handling.deferrals))
            if status is not Status.DEFERRED:
                break
            r.clock.now += 10
        assert vendor.requests == 0
        burned = sum(b for _, b, _ in rounds)
        assert burned == 0, (
            f"{burned} slots reserved and never used in {len(rounds)} rounds: {rounds}; "
            f"{report.reasons}"
        )


def test_busy_non_held_deferral_has_a_delay_of_at_least_one_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = record_parking(monkeypatch)
    for depth in (10.05, 10.5, 11.0, 14.9, 15.0, 15.5, 40.0):
        with relay(bulk_routes("max_hold_seconds: 0"), FakeAltcraft()) as r:
            gate, key, limit = gate_and_key(r)
            r.send(signup(1))
            while isinstance(gate.reserve(key, limit, max_wait=depth), Grant):
                pass
            (record,) = r.receive()
            pipeline = r.pipeline()
            pipeline._gathering = 5.0
            report = pipeline.process([record])
            assert report.count() == {Status.DEFERRED: 1}
            now, rec = seen[-1]
            assert not rec.counted
            assert math.ceil(rec.retry_at - now) >= 1, (depth, rec.retry_at - now)


def test_a_held_record_lands_within_max_hold_for_several_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = record_parking(monkeypatch)
    for gathering in (0.0, 1.0, 2.5, 20.0):
        with relay(bulk_routes("max_hold_seconds: 30"), FakeAltcraft()) as r:
            r.send(signup(1))
            (record,) = r.receive()
            first_seen = record.handling.first_seen
            assert first_seen is not None
            age = 0.0
            while age < 30:
                r.clock.now = first_seen + age
                take_the_next_slots(r)
                pipeline = r.pipeline()
                pipeline._gathering = gathering
                report = pipeline.process([record])
                if report.held:
                    now, rec = seen[-1]
                    visible = now + math.ceil(rec.retry_at - now)
                    assert visible + gathering <= first_seen + 30 + 1e-6, (gathering, age)
                    assert HELD in rec.reasons[-1]
                age += 0.7


def test_a_free_slot_missed_for_lack_of_time_is_not_a_busy_deferral_straight_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The quota is free; the invocation passes the "time left" check with 1.2 s, its token
    takes 0.5 s (a Zoho token minted over HTTP), and the free slot it reserves is then "after
    this invocation's deadline": a busy (uncounted) deferral, due at once."""
    seen = record_parking(monkeypatch)
    with relay(bulk_routes("max_hold_seconds: 0"), FakeAltcraft()) as r:
        r.send(signup(1))
        (record,) = r.receive()
        pipeline = r.pipeline(seconds_left=1.2)
        pipeline._gathering = 5.0
        token = pipeline.caller._token

        def slow_token(*args: Any) -> Any:
            r.clock.now += 0.5
            return token(*args)

        pipeline.caller._token = slow_token  # type: ignore[method-assign]
        report = pipeline.process([record])
        now, rec = seen[-1]
        assert report.count() == {Status.DEFERRED: 1}, report.reasons
        assert rec.counted or math.ceil(rec.retry_at - now) >= 1, (rec.reasons, rec.retry_at - now)


@pytest.mark.parametrize(
    "body",
    [
        '{"trigger_relay_bundle":["somebody"]}',
        '{"trigger_relay_bundle":{"body":1}}',
        '{"trigger_relay_bundle":[{"body":"x"}],"type":"user.signed_up"}',
        '{"trigger_relay_bundle":[]}',
        '{"trigger_relay_bundle":[{"body":"a","attributes":null}]}',
        '{"trigger_relay_bundle":[["body"]]}',
        '{"trigger_relay_bundle_x":[{"body":"x"}]}',
    ],
)
def test_unbundle_leaves_producer_shapes_alone(body: str) -> None:
    assert unbundle(body) is None


def test_waiting_for_slots_in_all_stays_within_max_wait_with_held_calls_too() -> None:
    accounts = SLOW_ACCOUNTS
    with relay(
        bulk_routes(params=CAPPED, accounts=accounts),
        FakeAltcraft(),
    ) as r:
        send_long_signups(r, 25)
        records = r.receive_all()
        take_the_next_slots(r)
        pipeline = r.pipeline()
        slept = record_sleeps(r, pipeline)
        report = pipeline.process(records)
        assert report.calls >= 2 and report.held >= 1
        assert sum(slept) <= 10.0 + 1e-9 and pipeline.caller.waited <= 10.0 + 1e-9, slept
        # the next invocation starts with a whole budget
        assert r.pipeline().caller.waited == 0.0
