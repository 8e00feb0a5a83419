"""QuotaGate on DynamoDB (moto, in process) with fake clocks: the bound, locks, and cost."""

from __future__ import annotations

import heapq
import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.offline import (
    PROPERTY_EXAMPLES,
    TABLE,
    Clock,
)
from trigger_relay.stores.quota import Denial, Grant, Limit, QuotaGate

EXAMPLES = itertools.count()


def test_idle_api_grants_now_then_spaces_slots(dynamodb) -> None:
    clock = Clock()
    gate = QuotaGate(TABLE, dynamodb, clock)
    limit = Limit(calls=11, window_seconds=10.5, safety_margin_seconds=0)
    first = gate.reserve("k", limit)
    second = gate.reserve("k", limit)
    assert limit.interval_ms == 1000  # window / (calls - 1/2)
    assert first == Grant(clock.now)
    assert isinstance(second, Grant) and round(second.slot_at - clock.now, 3) == 1.0


def test_a_busy_schedule_that_went_idle_grants_again_at_once(dynamodb) -> None:
    clock = Clock()
    gate = QuotaGate(TABLE, dynamodb, clock)
    limit = Limit(calls=300, window_seconds=10, safety_margin_seconds=0.1)
    assert isinstance(gate.reserve("k", limit), Grant)
    clock.now += 1.0  # the schedule's next slot is in the past now, but was seen recently
    grant = gate.reserve("k", limit)
    assert grant == Grant(clock.now)
    assert gate.requests <= 3  # one wrong guess at most


def test_schedule_full_beyond_max_wait_is_a_denial_with_a_time(dynamodb) -> None:
    clock = Clock()
    gate = QuotaGate(TABLE, dynamodb, clock)
    limit = Limit(calls=11, window_seconds=10.5, safety_margin_seconds=0, max_wait_seconds=2.5)
    grants = [gate.reserve("k", limit) for _ in range(3)]  # now, +1, +2
    assert all(isinstance(g, Grant) for g in grants)
    denial = gate.reserve("k", limit)
    assert isinstance(denial, Denial) and not denial.locked
    assert round(denial.retry_at - clock.now, 3) == 0.5  # tat (3.0) less max_wait (2.5)


def test_recorded_lock_stops_every_caller_until_it_ends(dynamodb) -> None:
    clock = Clock()
    gate, other = QuotaGate(TABLE, dynamodb, clock), QuotaGate(TABLE, dynamodb, clock)
    limit = Limit(calls=100, window_seconds=300, lock_seconds=1800)
    assert isinstance(gate.reserve("k", limit), Grant)
    until = gate.record_lock("k", limit.lock_seconds)
    assert round(until - clock.now, 3) == 1800
    denial = other.reserve("k", limit)
    assert denial == Denial(retry_at=until, locked=True)
    clock.now = until + 0.001
    assert isinstance(other.reserve("k", limit), Grant)


def test_other_apis_are_not_locked(dynamodb) -> None:
    gate = QuotaGate(TABLE, dynamodb, Clock())
    limit = Limit(calls=100, window_seconds=300)
    gate.record_lock("zoho#a#workflow", 1800)
    assert isinstance(gate.reserve("zoho#a#journey", limit), Grant)


def test_one_conditional_write_per_grant_under_a_backlog(dynamodb) -> None:
    clock = Clock()
    gates = [QuotaGate(TABLE, dynamodb, clock) for _ in range(4)]
    limit = Limit(calls=50, window_seconds=5, safety_margin_seconds=0.1, max_wait_seconds=60)
    grants = 0
    for _ in range(50):
        for gate in gates:
            grants += isinstance(gate.reserve("k", limit), Grant)
        clock.now += 0.05
    requests = sum(g.requests for g in gates)
    assert grants == 200
    # each gate pays one extra write at most when it first learns that a backlog exists
    assert requests <= grants + len(gates)


class Crowded:
    """A DynamoDB client on which every round trip takes `latency` of the shared clock, and
    another caller takes a slot just before each of our even-numbered requests."""

    def __init__(self, client: object, clock: Clock, other: QuotaGate, limit: Limit) -> None:
        self._client, self._clock, self._other, self._limit = client, clock, other, limit
        self.latency = 0.010
        self.calls = 0
        self.grants: list[Grant] = []

    def update_item(self, **kwargs: object) -> object:
        self.calls += 1
        if self.calls % 2 == 0:
            grant = self._other.reserve("k", self._limit)
            assert isinstance(grant, Grant)
            self.grants.append(grant)
        try:
            return self._client.update_item(**kwargs)
        finally:
            self._clock.now += self.latency


def test_slots_shorter_than_a_round_trip_are_still_granted_under_contention(dynamodb) -> None:
    clock = Clock()
    limit = Limit(calls=100_000, window_seconds=300, safety_margin_seconds=0)  # 3 ms apart
    other = QuotaGate(TABLE, dynamodb, clock)
    crowded = Crowded(dynamodb, clock, other, limit)
    gate = QuotaGate(TABLE, crowded, clock)
    grants = []
    for _ in range(50):
        clock.now += 0.1  # the schedule goes idle between calls, and the other caller races us
        before = crowded.calls
        grants.append(gate.reserve("k", limit))
        assert isinstance(grants[-1], Grant)
        assert crowded.calls - before <= 3
    slots = sorted(round(g.slot_at * 1000) for g in grants + crowded.grants)
    assert len(crowded.grants) >= 49  # the other caller raced all but the first reservation
    assert min(b - a for a, b in itertools.pairwise(slots)) >= limit.interval_ms


def test_limit_config_checks() -> None:
    with pytest.raises(ValueError, match="shorter than window"):
        Limit(calls=10, window_seconds=5, safety_margin_seconds=5)
    assert Limit(calls=500, window_seconds=300).utilisation() > 0.99
    # the real limits with the default margin: >= 98% of what the vendor documents
    assert Limit(calls=100, window_seconds=300).utilisation() >= 0.988
    assert Limit(calls=50, window_seconds=5, safety_margin_seconds=0.1).utilisation() >= 0.95


def calls_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] < t - window:
            start += 1
        most = max(most, end - start + 1)
    return most


@settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    clients=st.integers(min_value=1, max_value=8),
    calls=st.integers(min_value=2, max_value=30),
    window=st.floats(min_value=1.0, max_value=10.0),
    skew=st.floats(min_value=0.0, max_value=0.3),
    latency=st.floats(min_value=0.0, max_value=0.2),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_never_more_than_the_limit_in_any_window(
    dynamodb, clients, calls, window, skew, latency, seed
) -> None:
    """Many clients with skewed clocks and late delivery never exceed the vendor's limit."""
    rng = random.Random(seed)
    limit = Limit(
        calls=calls,
        window_seconds=window,
        safety_margin_seconds=skew + latency + 0.01,
        max_wait_seconds=rng.uniform(0, window),
    )
    key = f"example-{next(EXAMPLES)}"  # a fresh item: replays must not see earlier state
    real = Clock(1_800_000_000.0)
    offsets = [rng.uniform(-skew / 2, skew / 2) for _ in range(clients)]
    gates = [QuotaGate(TABLE, dynamodb, lambda o=o: real.now + o) for o in offsets]
    horizon = real.now + 3 * window
    arrivals = [(real.now + rng.uniform(0, 0.5), i) for i in range(clients)]
    heapq.heapify(arrivals)
    vendor_times: list[float] = []
    denied_while_idle = 0
    while arrivals:
        real.now, i = heapq.heappop(arrivals)
        if real.now > horizon:
            continue
        decision = gates[i].reserve(key, limit)
        if isinstance(decision, Grant):
            call_at = decision.slot_at - offsets[i]  # the client's clock to real time
            vendor_times.append(max(call_at, real.now) + rng.uniform(0, latency))
            next_at = max(call_at, real.now) + rng.uniform(0, 0.3) * rng.choice([1, 1, 1, 20])
        else:
            # liveness: without a lock, a denial must mean a schedule full beyond max_wait
            item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": key}})["Item"]
            client_now_ms = int((real.now + offsets[i]) * 1000)  # as the gate counts: whole ms
            horizon_ms = client_now_ms + int(limit.max_wait_seconds * 1000)
            denied_while_idle += int(item["tat"]["N"]) <= horizon_ms
            next_at = decision.retry_at - offsets[i] + rng.uniform(0, 0.05)
        heapq.heappush(arrivals, (max(next_at, real.now + 0.001), i))
    assert calls_in_any_window(vendor_times, window) <= calls
    assert denied_while_idle == 0


def test_a_denial_the_last_answer_implies_costs_no_request(dynamodb) -> None:
    clock = Clock()
    gate, other = QuotaGate(TABLE, dynamodb, clock), QuotaGate(TABLE, dynamodb, clock)
    limit = Limit(calls=11, window_seconds=10.5, safety_margin_seconds=0, max_wait_seconds=1.5)
    assert all(isinstance(gate.reserve("k", limit), Grant) for _ in range(2))  # now, +1
    denial = gate.reserve("k", limit)  # tat is 2 s ahead: beyond max_wait
    assert denial == Denial(retry_at=clock.now + 0.5, locked=False)
    before = gate.requests
    clock.now += 0.25
    # tat only moves forward: still beyond reach, answered without asking the table
    assert gate.reserve("k", limit) == Denial(retry_at=clock.now + 0.25, locked=False)
    assert gate.requests == before
    clock.now += 0.25  # the floor is within reach now: the table is asked, and grants
    assert isinstance(gate.reserve("k", limit), Grant)
    assert gate.requests > before
    # within reach of the floor, another environment's reservations have moved tat past it:
    # the table is asked, once, and refuses
    clock.now += 1.5
    other_grants = [other.reserve("k", limit, max_wait=60) for _ in range(3)]
    assert all(isinstance(g, Grant) for g in other_grants)
    asked = gate.requests
    assert isinstance(gate.reserve("k", limit), Denial)
    assert gate.requests == asked + 1


def test_a_lock_seen_is_answered_locally_until_it_ends(dynamodb) -> None:
    clock = Clock()
    gate, other = QuotaGate(TABLE, dynamodb, clock), QuotaGate(TABLE, dynamodb, clock)
    limit = Limit(calls=100, window_seconds=300, lock_seconds=1800)
    until = other.record_lock("k", limit.lock_seconds)
    assert gate.reserve("k", limit) == Denial(retry_at=until, locked=True)
    before = gate.requests
    clock.now += 60
    assert gate.reserve("k", limit) == Denial(retry_at=until, locked=True)
    assert gate.requests == before
    clock.now = until + 0.001
    assert isinstance(gate.reserve("k", limit), Grant)


def test_a_booked_slot_is_spent_once_and_not_while_locked(dynamodb) -> None:
    clock = Clock()
    gate, other = QuotaGate(TABLE, dynamodb, clock), QuotaGate(TABLE, dynamodb, clock)
    limit = Limit(calls=100, window_seconds=300, lock_seconds=1800)
    slot = gate.reserve("k", limit)
    assert isinstance(slot, Grant)
    assert gate.spend("k", slot.slot_at)
    assert not other.spend("k", slot.slot_at)  # another Lambda with the same ticket
    assert not gate.spend("k", slot.slot_at)
    later = gate.reserve("k", limit, max_wait=60)
    assert isinstance(later, Grant)
    other.record_lock("k", limit.lock_seconds)
    assert not gate.spend("k", later.slot_at)  # a lock recorded since the booking
    # the marker expires through the table's TTL a day after the slot
    item = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": f"k#spent#{round(slot.slot_at * 1000)}"}}
    )
    assert int(item["Item"]["expiration"]["N"]) == pytest.approx(slot.slot_at + 86400, abs=1)


def test_spending_a_slot_keeps_the_schedule_item_out_of_any_transaction(dynamodb) -> None:
    """DynamoDB refuses an UpdateItem on an item in an ongoing transaction (a
    TransactionConflict, which moto never raises): every reservation writes the schedule's
    item, so spending a slot must not put it in one."""
    calls: list[tuple[str, dict]] = []

    class Recording:
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            method = getattr(dynamodb, name)

            def record(**kwargs):  # type: ignore[no-untyped-def]
                calls.append((name, kwargs))
                return method(**kwargs)

            return record

    clock = Clock()
    gate = QuotaGate(TABLE, Recording(), clock)  # type: ignore[arg-type]
    limit = Limit(calls=100, window_seconds=300)
    slot = gate.reserve("k", limit)
    assert isinstance(slot, Grant)
    calls.clear()
    assert gate.spend("k", slot.slot_at)
    assert "transact_write_items" not in {name for name, _ in calls}
    writes = [kw["Key"]["pk"]["S"] for name, kw in calls if name == "update_item"]
    assert writes == [f"k#spent#{round(slot.slot_at * 1000)}"]
