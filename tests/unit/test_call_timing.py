"""When a call reaches the vendor: within its quota slot's lateness allowance, whatever the token
refresh, DynamoDB or the network cost; and never after the invocation could have ended.

The quota's any-window bound (test_quota.test_never_more_than_the_limit_in_any_window) holds
for calls that reach the vendor at most ``safety_margin`` after their slot, clock skew
included. These tests show that the real VendorCaller keeps every call within half of it
(``Limit.lateness_seconds``; the other half is for skew) under token refreshes that wait on
another Lambda's mint lease, slow DynamoDB answers, slow connections and retries.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.offline import PROPERTY_EXAMPLES
from tests.helpers.relay import Clock, relay
from trigger_relay.pipeline.routes import Account
from trigger_relay.pipeline.vendor_calls import MIN_CALL_SECONDS, Deferred, VendorCaller
from trigger_relay.stores.quota import Grant, Limit, QuotaGate
from trigger_relay.vendors.altcraft.trigger import ALTCRAFT_TRIGGER, ProfileRecipient, TriggerParams
from trigger_relay.vendors.outcomes import CallResult

LIMIT = Limit(calls=100, window_seconds=300, safety_margin_seconds=2.0)
ACCOUNT = Account(
    vendor="altcraft",
    secret="s",
    base_url="https://ac.example.com",
    limits={ALTCRAFT_TRIGGER.action: LIMIT},
)
PARAMS = TriggerParams(id=84)


class SlowCredentials:
    """A token that takes `delay` seconds to get: a refresh waiting on another Lambda's lease."""

    def __init__(self, clock: Clock, delays: list[float]) -> None:
        self._clock, self._delays = clock, delays

    def token(self, account_name: str, account: Account, deadline: float | None = None) -> str:
        self._clock.now += self._delays.pop(0) if self._delays else 0.0
        return "token"

    def invalidate(self, account_name: str, account: Account) -> None:
        return None


class SlowDynamoDB:
    """Answers arrive `latency` seconds after DynamoDB applied the write."""

    def __init__(self, client: Any, clock: Clock, latencies: list[float]) -> None:
        self._client, self._clock, self._latencies = client, clock, latencies

    def update_item(self, **kwargs: Any) -> Any:
        try:
            return self._client.update_item(**kwargs)
        finally:
            self._clock.now += self._latencies.pop(0) if self._latencies else 0.0


class Network:
    """Connecting takes `connect` seconds (a timeout if longer than allowed); then the vendor
    sees the request, and answers after `answer` seconds (a read timeout if longer)."""

    def __init__(self, clock: Clock, steps: list[tuple[float, float, int]]) -> None:
        self._clock, self._steps = clock, steps
        self.arrivals: list[float] = []
        self.budgets: list[tuple[float, float]] = []  # (time sent, total timeout)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions["timeout"]
        self.budgets.append((self._clock.now, sum(timeout.values())))
        connect, answer, status = self._steps.pop(0) if self._steps else (0.0, 0.0, 200)
        if connect > timeout["connect"]:
            self._clock.now += timeout["connect"]
            raise httpx.ConnectTimeout("slow connect", request=request)
        self._clock.now += connect
        self.arrivals.append(self._clock.now)
        if answer > timeout["read"]:
            self._clock.now += timeout["read"]
            raise httpx.ReadTimeout("slow answer", request=request)
        self._clock.now += answer
        return httpx.Response(status, json={"error": 0, "error_text": "Successful operation"})


def caller(
    r, network: Network, credentials: SlowCredentials, latencies: list[float], seconds: float
):
    grants: list[float] = []
    quota = QuotaGate("quota", SlowDynamoDB(r.aws["dynamodb"], r.clock, latencies), r.clock)
    reserve = quota.reserve

    def recording(key: str, limit: Limit, max_wait: float | None = None) -> Any:
        decision = reserve(key, limit, max_wait)
        if isinstance(decision, Grant):
            grants.append(decision.slot_at)
        return decision

    quota.reserve = recording  # type: ignore[method-assign]
    vendor_caller = VendorCaller(
        httpx.Client(transport=httpx.MockTransport(network)),
        quota,
        credentials,  # type: ignore[arg-type]
        deadline=r.clock.now + seconds,
        clock=r.clock,
        sleep=lambda s: setattr(r.clock, "now", r.clock.now + max(0.0, s)),
    )
    return vendor_caller, grants


def call(vendor_caller: VendorCaller, repeat_safe: bool = True) -> CallResult | Deferred:
    recipients = [ProfileRecipient(email="a@example.com")]
    return vendor_caller.call(
        "ac", ACCOUNT, ALTCRAFT_TRIGGER, PARAMS, recipients, repeat_safe=repeat_safe
    )


def test_a_token_refresh_waiting_on_a_lease_does_not_spend_the_slot() -> None:
    """The token used to be fetched after the slot was granted: a 10 s wait on another
    Lambda's mint lease made the call 10 s late, and a full schedule then exceeded the limit."""
    with relay() as r:
        network = Network(r.clock, [])
        vendor_caller, grants = caller(r, network, SlowCredentials(r.clock, [10.0]), [], 60)
        for _ in range(3):  # a backlog: slots one interval apart
            assert isinstance(call(vendor_caller), CallResult)
        assert len(network.arrivals) == 3
        for slot, arrival in zip(grants, network.arrivals, strict=True):
            assert slot <= arrival <= slot + LIMIT.lateness_seconds


def test_no_call_can_outlive_the_invocation() -> None:
    """10 s reserve used to meet 3 s connect + 10 s read per attempt, and a retry started up to
    1 s before the deadline: the timeout killed the invocation mid-call."""
    with relay() as r:
        network = Network(r.clock, [(0.0, 30.0, 200)])  # the answer never comes in time
        vendor_caller, _ = caller(r, network, SlowCredentials(r.clock, []), [], seconds=5.0)
        deadline = r.clock.now + 5.0
        result = call(vendor_caller, repeat_safe=False)
        assert isinstance(result, CallResult)
        ((sent, budget),) = network.budgets  # not retried: it may have been acted on
        assert sent + budget <= deadline
        assert r.clock.now <= deadline
        # With less than MIN_CALL_SECONDS left, nothing starts
        r.clock.now = deadline - MIN_CALL_SECONDS / 2
        assert isinstance(call(vendor_caller), Deferred)
        assert len(network.budgets) == 1


@settings(
    max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_every_call_reaches_the_vendor_within_its_slots_lateness_allowance(seed: int) -> None:
    rng = random.Random(seed)
    with relay() as r:
        token_delays = [rng.choice([0.0, 0.0, rng.uniform(0, 12)]) for _ in range(40)]
        latencies = [rng.choice([0.0, 0.01, rng.uniform(0, 3)]) for _ in range(200)]
        steps = [
            (
                rng.choice([0.0, 0.05, rng.uniform(0, 4)]),
                rng.choice([0.1, rng.uniform(0, 12)]),
                rng.choice([200, 200, 200, 503]),
            )
            for _ in range(200)
        ]
        network = Network(r.clock, steps)
        seconds = rng.uniform(2, 120)
        vendor_caller, grants = caller(
            r, network, SlowCredentials(r.clock, token_delays), latencies, seconds
        )
        deadline = r.clock.now + seconds
        for _ in range(rng.randint(1, 12)):
            call(vendor_caller, repeat_safe=rng.random() < 0.5)
        for arrival in network.arrivals:
            slot = max(g for g in grants if g <= arrival + 1e-9)
            assert arrival - slot <= LIMIT.lateness_seconds + 1e-6
        for sent, budget in network.budgets:
            assert sent + budget <= deadline + 1e-6
