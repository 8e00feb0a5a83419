"""What the coalescing tests share: an Altcraft bulk route, a way to make its quota busy, a
quota like Zoho Marketing Automation's (100 calls / 5 min, so slots are about 3 s apart), signups
with addresses long enough that a few fill a call under the smallest body cap, and recorders of
what the pipeline parks and how long it sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.relay import ACCOUNTS, Relay, route
from trigger_relay.pipeline.relay import TriggerPipeline
from trigger_relay.pipeline.vendor_calls import quota_key
from trigger_relay.stores.parking import Deferrals, ParkedRecord
from trigger_relay.stores.quota import Grant, Limit, QuotaGate

BULK = "altcraft.bulk_trigger"
# the account with a limit of 100 calls / 5 min and 10 s of waiting for slots
SLOW_ACCOUNTS = ACCOUNTS.replace(
    'base_url: "https://ac.example.com"}',
    'base_url: "https://ac.example.com", limits: {altcraft.bulk_trigger: '
    "{calls: 100, window_seconds: 300, max_wait_seconds: 10}}}",
)
CAPPED = "{trigger_id: 7, max_body_bytes: 1024}"  # Altcraft's smallest body cap
LONG_DOMAIN = ".".join(["d" * 60] * 3) + ".example"


def bulk_routes(extra: str = "", params: str = "{trigger_id: 7}", accounts: str = ACCOUNTS) -> str:
    return accounts + route("welcome-bulk", BULK, params, extra=extra)


def signup(n: int, **user: object) -> dict[str, object]:
    return {
        "type": "user.signed_up",
        "id": f"evt-{n}",
        "user": {"email": f"user{n}@example.com", "id": f"u-{n}", **user},
    }


def send_long_signups(r: Relay, count: int) -> None:
    """Signups whose addresses take about a third of a capped call each."""
    for n in range(count):
        r.send({"type": "user.signed_up", "user": {"email": f"user{n}@{LONG_DOMAIN}"}})


def gate_and_key(r: Relay, index: int = 0) -> tuple[QuotaGate, str, Limit]:
    """The quota gate, key and limit of the routes file's route ``index`` (account "ac")."""
    account = r.routes.accounts["ac"]
    api = r.routes.routes[index].api
    return (
        r.pipeline().caller.quota,
        quota_key("ac", account, api),
        account.limit(api.quota_api),
    )


def take_the_next_slots(r: Relay, index: int = 0) -> None:
    """Other Lambdas' calls: the next two slots are taken, so a call now would queue behind
    another caller's (the next one alone is still "room": a wait of one interval at most)."""
    gate, key, limit = gate_and_key(r, index)
    for _ in range(2):
        assert isinstance(gate.reserve(key, limit), Grant)


def record_parking(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, ParkedRecord]]:
    """(now, record) of every record handed to Deferrals.park."""
    seen: list[tuple[float, ParkedRecord]] = []
    park = Deferrals.park

    def parking(self: Deferrals, records: list[ParkedRecord]) -> dict[str, str]:
        seen.extend((self._clock(), rec) for rec in records)
        return park(self, records)

    monkeypatch.setattr(Deferrals, "park", parking)
    return seen


def record_sleeps(r: Relay, pipeline: TriggerPipeline) -> list[float]:
    """Every sleep of the pipeline's caller, each passed on the fake clock at once."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        r.clock.now += seconds

    caller: Any = pipeline.caller
    caller._sleep = sleep
    return slept
