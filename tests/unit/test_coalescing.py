"""Quota-aware coalescing: a call with room for more recipients goes out at once when a slot is
free, and is held back (deferred as the same events) while the quota is busy, for at most its
route's max_hold_seconds. Counted at the vendor: nothing lost, nothing launched twice."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.helpers.coalescing import (
    CAPPED,
    bulk_routes,
    record_parking,
    send_long_signups,
    signup,
    take_the_next_slots,
)
from tests.helpers.relay import FakeAltcraft, Relay, relay, route
from trigger_relay.pipeline.events import from_sqs_body
from trigger_relay.pipeline.relay import HELD, Status
from trigger_relay.pipeline.vendor_calls import quota_key
from trigger_relay.stores.parking import DeferralLimit, Deferrals, ParkedRecord
from trigger_relay.stores.quota import Grant


def drain(r: Relay) -> Counter[Status]:
    """One invocation with everything on the queue."""
    records = r.receive_all()
    report = r.pipeline().process(records)
    r.acknowledge(report)
    return report.count()


def launched(vendor: FakeAltcraft) -> Counter[str]:
    return Counter(email for _, email in vendor.launched)


def test_a_call_with_room_goes_out_at_once_while_a_slot_is_free() -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        for n in range(5):
            r.send(signup(n))
        report = r.pipeline().process(r.receive())
        assert report.count() == {Status.DELIVERED: 5}
        assert vendor.requests == 1 and len(vendor.launched) == 5


def test_while_the_quota_is_busy_small_calls_are_held_and_go_out_together_in_one() -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        for wave in range(3):  # three invocations of 4 records each, the quota busy each time
            for n in range(4 * wave, 4 * wave + 4):
                r.send(signup(n))
            take_the_next_slots(r)
            records = r.receive_all()  # the held copies too (the harness's delays elapse at once)
            report = r.pipeline().process(records)
            r.acknowledge(report)
            held = 4 * (wave + 1)
            assert report.count() == {Status.DEFERRED: held} and report.held == held
            assert all(reason.endswith(HELD) for rs in report.reasons.values() for reason in rs)
            assert report.calls == 0 and vendor.requests == 0
        # the held copies keep their identity and age; the quota has room again
        r.clock.now += 30
        counts = drain(r)
        assert counts == {Status.DELIVERED: 12}
        assert vendor.requests == 1  # one call of 12, not three of 4
        assert launched(vendor) == Counter(f"user{n}@example.com" for n in range(12))
        # a redelivery of every original is recognised: nothing is launched twice
        for n in range(12):
            r.send(signup(n))
        assert drain(r) == {Status.DELIVERED: 12}
        assert len(vendor.launched) == 12


def test_a_record_is_never_held_longer_than_its_routes_max_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parked = record_parking(monkeypatch)
    vendor = FakeAltcraft()
    with relay(bulk_routes("max_hold_seconds: 20"), vendor) as r:
        r.send(signup(1))
        for _ in range(10):  # the quota stays busy
            take_the_next_slots(r)
            (record,) = r.receive()
            first_seen = record.handling.first_seen
            assert first_seen is not None  # SentTimestamp, kept by every copy
            age = r.clock.now - first_seen
            report = r.pipeline().process([record])
            r.acknowledge(report)
            if age > 20 - 20 / 6 / 2:  # a last hold shorter than half a step is not worth it
                assert report.count() == {Status.DELIVERED: 1}
                break
            assert report.held == 1
            # back no later than the hold's end, and no sooner than a sixth of it
            assert r.clock.now + 20 / 6 - 0.01 <= (parked[-1][1].retry_at or 0) <= first_seen + 20
            r.clock.now += 5
        assert len(vendor.launched) == 1 and len(parked) == 4


def test_a_route_with_no_hold_waits_for_its_slot_as_before() -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes("max_hold_seconds: 0"), vendor) as r:
        r.send(signup(1))
        take_the_next_slots(r)
        report = r.pipeline().process(r.receive())
        assert report.count() == {Status.DELIVERED: 1} and report.held == 0


def test_full_calls_are_not_held_only_the_partial_rest() -> None:
    """Long addresses and Altcraft's smallest body cap: a few recipients fill a call."""
    vendor = FakeAltcraft()
    with relay(bulk_routes(params=CAPPED), vendor) as r:
        send_long_signups(r, 7)
        records = r.receive()
        only = r.routes.routes[0]
        events = [from_sqs_body(rec.body, rec.record_id, {}) for rec in records]
        sizes = [
            len(c) for c in only.api.chunk([only.recipient(e) for e in events], only.typed_params)
        ]
        assert len(sizes) >= 3 and sizes[-1] < sizes[0]
        take_the_next_slots(r)
        report = r.pipeline().process(records)
        # every full call waited for its slot; only the partial rest was held
        assert report.count() == {Status.DELIVERED: sum(sizes[:-1]), Status.DEFERRED: sizes[-1]}
        assert report.held == sizes[-1] and vendor.requests == len(sizes) - 1


def test_a_locked_api_defers_as_a_lock_not_as_a_hold() -> None:
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        account = r.routes.accounts["ac"]
        api = r.routes.routes[0].api
        r.pipeline().caller.quota.record_lock(quota_key("ac", account, api), 60)
        r.send(signup(1))
        report = r.pipeline().process(r.receive())
        assert report.count() == {Status.DEFERRED: 1} and report.held == 0
        assert "lock" in next(iter(report.reasons.values()))[0]


def test_a_held_copy_and_a_redelivered_original_together_launch_once() -> None:
    """SQS delivers the original again (at least once) after its held copy was enqueued."""
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        r.send(signup(1))
        take_the_next_slots(r)
        (original,) = r.receive()
        held = r.pipeline().process([original])
        assert held.held == 1  # the original is not acknowledged: SQS will deliver it again
        (copy,) = r.receive()
        r.clock.now += 30
        report = r.pipeline().process([original, copy])
        assert report.count() == {Status.DELIVERED: 2}
        assert vendor.launched == [("7", "user1@example.com")]


def test_a_hold_that_cannot_be_enqueued_comes_back_through_sqs_unsent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(self: Deferrals, records: list[ParkedRecord]) -> dict[str, str]:
        return {r.record_id: "AWS.SimpleQueueService.Throttled" for r in records}

    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        r.send(signup(1))
        take_the_next_slots(r)
        records = r.receive()
        with monkeypatch.context() as patch:
            patch.setattr(Deferrals, "park", refused)
            report = r.pipeline().process(records)
        assert report.count() == {Status.RETRY: 1} and vendor.requests == 0
        assert report.partial_batch_response()["batchItemFailures"]
        r.clock.now += 30  # SQS redelivers it; the quota has room again
        again = r.pipeline().process(records)
        assert again.count() == {Status.DELIVERED: 1} and len(vendor.launched) == 1


def test_a_call_that_went_out_is_repeated_at_its_next_slot_not_held() -> None:
    """Only the first request asks for a free slot: a transient failure's repeat waits."""
    vendor = FakeAltcraft(faults=[httpx.Response(503, text="Service Unavailable")])
    with relay(bulk_routes(), vendor) as r:
        r.send(signup(1))
        report = r.pipeline().process(r.receive())
        assert vendor.requests == 2
        assert report.count() == {Status.DELIVERED: 1} and report.held == 0


def queued(r: Relay) -> int:
    attributes = r.aws["sqs"].get_queue_attributes(
        QueueUrl=r.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_a_held_call_comes_back_as_one_message_to_one_invocation() -> None:
    """SQS spreads single messages over the concurrent pollers: held one by one, a call of 40
    came back as several smaller ones."""
    vendor = FakeAltcraft()
    with relay(bulk_routes(), vendor) as r:
        for n in range(40):
            r.send(signup(n))
        records = r.receive_all()
        take_the_next_slots(r)
        report = r.pipeline().process(records)
        r.acknowledge(report)
        assert report.held == 40 and queued(r) == 1
        (bundle,) = r.aws["sqs"].receive_message(QueueUrl=r.queue_url).get("Messages", [])
        r.aws["sqs"].change_message_visibility(
            QueueUrl=r.queue_url, ReceiptHandle=bundle["ReceiptHandle"], VisibilityTimeout=0
        )
        r.clock.now += 30
        back = r.receive()
        assert len(back) == 40 and {rec.message_id for rec in back} == {bundle["MessageId"]}
        report = r.pipeline().process(back)
        r.acknowledge(report)
        assert report.count() == {Status.DELIVERED: 40} and vendor.requests == 1
        assert queued(r) == 0


def test_a_bundle_member_left_to_retry_comes_back_alone_and_the_bundle_is_acknowledged() -> None:
    vendor = FakeAltcraft()
    with relay(
        bulk_routes() + route("welcome-launch", "altcraft.trigger", "{id: 84}"), vendor
    ) as r:
        for n in range(3):
            r.send(signup(n))
        records = r.receive_all()
        take_the_next_slots(r)
        first = r.pipeline().process(records)  # launch v1.1 delivered; the bulk call held
        r.acknowledge(first)
        assert first.held == 3 and first.count() == {Status.DEFERRED: 3}
        r.clock.now += 30
        bundle = r.receive()
        assert len(bundle) == 3 and len({rec.message_id for rec in bundle}) == 1
        vendor.faults = ["connect_refused", "connect_refused"]  # both attempts of the bulk call
        report = r.pipeline().process(bundle)
        assert report.count() == {Status.DEFERRED: 3}  # retried as copies, not through SQS
        assert report.partial_batch_response() == {"batchItemFailures": []}
        r.acknowledge(report)
        r.clock.now += 60
        assert drain(r) == {Status.DELIVERED: 3}
        assert sorted(launched(vendor).values()) == [2, 2, 2]  # each once per route


def test_waiting_for_slots_is_bounded_by_age_not_by_the_number_of_deferrals() -> None:
    """A backlog of hours sends a record round many times: only MaxDeferralAgeSeconds ends
    that, while a lock's deferrals still count."""
    vendor = FakeAltcraft()
    with relay(bulk_routes("max_hold_seconds: 0"), vendor) as r:
        r.deferral_limit = DeferralLimit(max_deferrals=2, max_age_seconds=3600)
        r.send(signup(1))
        account = r.routes.accounts["ac"]
        api = r.routes.routes[0].api
        limit = account.limit(api.quota_api)
        gate = r.pipeline().caller.quota
        for _ in range(5):  # the schedule stays full beyond max_wait
            while isinstance(gate.reserve(quota_key("ac", account, api), limit), Grant):
                pass
            (record,) = r.receive()
            report = r.pipeline().process([record])
            r.acknowledge(report)
            assert report.count() == {Status.DEFERRED: 1}
        assert record.handling.deferrals == 0
        r.clock.now += 3 * 3600  # an hour past the age limit, still no slot
        while isinstance(gate.reserve(quota_key("ac", account, api), limit), Grant):
            pass
        (record,) = r.receive()
        report = r.pipeline().process([record])
        assert report.count() == {Status.REJECTED: 1}
        assert "deferred too long" in next(iter(report.reasons.values()))[-1]
        assert vendor.requests == 0
