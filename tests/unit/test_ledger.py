"""The delivery ledger's claims: one invocation delivers a pair, whatever SQS hands to whom."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import httpx
import pytest
from moto import mock_aws

from tests.conftest import ROOT
from tests.helpers.offline import (
    TABLE,
    Clock,
    FakeZoho,
    Nowhere,
    create_table,
    offline_caller,
)
from trigger_relay.pipeline.relay import InboundRecord, Status, TriggerPipeline
from trigger_relay.pipeline.routes import load_routes
from trigger_relay.stores.ledger import DeliveryLedger

LEDGER = "ledger"


@pytest.fixture
def dynamodb() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(client, LEDGER, "id")
        create_table(client, TABLE, "pk")
        yield client


def test_a_claimed_pair_is_busy_for_others_until_delivered_then_done(dynamodb) -> None:
    clock = Clock()
    mine = DeliveryLedger(LEDGER, dynamodb, clock, hold_seconds=60)
    other = DeliveryLedger(LEDGER, dynamodb, clock, hold_seconds=60)
    assert mine.claim(["e1#r", "e2#r"]).mine == {"e1#r", "e2#r"}
    seen = other.claim(["e1#r", "e2#r", "e3#r"])
    assert seen.mine == {"e3#r"} and not seen.delivered
    assert set(seen.busy) == {"e1#r", "e2#r"}
    assert all(clock.now + 60 <= until <= clock.now + 62 for until in seen.busy.values())
    mine.remember(["e1#r"])
    mine.release(["e2#r"])
    again = other.claim(["e1#r", "e2#r"])
    assert again.delivered == {"e1#r"} and again.mine == {"e2#r"} and not again.busy
    assert other.delivered(["e1#r", "e2#r", "e3#r"]) == {"e1#r"}  # claims are not deliveries


def test_a_claim_left_by_a_killed_invocation_lapses(dynamodb) -> None:
    clock = Clock()
    DeliveryLedger(LEDGER, dynamodb, clock, hold_seconds=30).claim(["e1#r"])  # then it died
    late = DeliveryLedger(LEDGER, dynamodb, clock, hold_seconds=30)
    assert set(late.claim(["e1#r"]).busy) == {"e1#r"}
    clock.now += 32
    assert late.claim(["e1#r"]).mine == {"e1#r"}


def test_a_delivery_expires_after_a_day(dynamodb) -> None:
    clock = Clock()
    ledger = DeliveryLedger(LEDGER, dynamodb, clock)
    ledger.claim(["e1#r"])
    ledger.remember(["e1#r"])
    assert ledger.claim(["e1#r"]).delivered == {"e1#r"}
    clock.now += 24 * 3600 + 1
    assert ledger.claim(["e1#r"]).mine == {"e1#r"}


def test_a_mixed_set_is_sorted_in_few_transactions(dynamodb) -> None:
    clock = Clock()
    first = DeliveryLedger(LEDGER, dynamodb, clock)
    done = [f"d{n}" for n in range(30)]
    first.claim(done)
    first.remember(done)
    held = [f"h{n}" for n in range(20)]
    first.claim(held)
    fresh = [f"f{n}" for n in range(150)]
    ledger = DeliveryLedger(LEDGER, dynamodb, clock)
    claims = ledger.claim(fresh[:70] + done + held + fresh[70:])
    assert claims.mine == set(fresh)
    assert claims.delivered == set(done)
    assert set(claims.busy) == set(held)
    # 200 pairs: two transactions, each refused once for the pairs taken before it
    assert ledger.requests == 4


def test_the_same_records_in_two_invocations_at_once_reach_zoho_once(dynamodb) -> None:
    """SQS hands the batch to a second invocation while the first is calling Zoho."""
    clock = Clock()
    zoho = FakeZoho(accounts_host="accounts.zoho.com")
    routes = load_routes(ROOT / "layers" / "common" / "routes.yaml")
    records = [
        InboundRecord(
            f"m{i}",
            json.dumps({"type": "user.signed_up", "id": f"e{i}", "user": {"email": f"u{i}@x.co"}}),
        )
        for i in range(30)
    ]
    reports = {}

    def pipeline(transport: httpx.MockTransport) -> TriggerPipeline:
        caller = offline_caller(httpx.Client(transport=transport), dynamodb, clock)
        ledger = DeliveryLedger(LEDGER, dynamodb, clock, hold_seconds=60)
        return TriggerPipeline(routes, caller, ledger, Nowhere(), Nowhere())  # type: ignore[arg-type]

    second = pipeline(httpx.MockTransport(zoho))

    def first_transport(request: httpx.Request) -> httpx.Response:
        if "oauth" not in request.url.path and "second" not in reports:
            reports["second"] = second.process(records)  # while the first call is in flight
        return zoho(request)

    reports["first"] = pipeline(httpx.MockTransport(first_transport)).process(records)

    assert len(zoho.trigger_calls) == 1
    assert set(reports["first"].statuses.values()) == {Status.DELIVERED}
    assert set(reports["second"].statuses.values()) == {Status.DEFERRED}
    assert all("another call" in r for rs in reports["second"].reasons.values() for r in rs)
    # when the deferred copies come back, the ledger knows they were delivered
    third = pipeline(httpx.MockTransport(zoho)).process(records)
    assert set(third.statuses.values()) == {Status.DELIVERED} and len(zoho.trigger_calls) == 1


def test_the_local_stacks_faster_transactions_decide_as_moto_does() -> None:
    """The ledger's claims under the local stack's transaction fix: same verdicts, same items."""
    from trigger_relay_local.stack import moto_patches

    def run() -> tuple[object, ...]:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="eu-west-1")
            create_table(client, LEDGER, "id")
            clock = Clock()
            first = DeliveryLedger(LEDGER, client, clock)
            first.claim([f"d{n}" for n in range(10)] + [f"h{n}" for n in range(5)])
            first.remember([f"d{n}" for n in range(10)])
            claims = DeliveryLedger(LEDGER, client, clock).claim(
                [f"f{n}" for n in range(20)] + [f"d{n}" for n in range(10)] + ["h0", "h1"]
            )
            items = client.scan(TableName=LEDGER)["Items"]
            return (
                sorted(claims.mine),
                sorted(claims.delivered),
                sorted(claims.busy),
                sorted((i["id"]["S"], "claimed_until" in i) for i in items),
            )

    from moto.dynamodb.models import DynamoDBBackend

    moto_patches.apply()
    fixed = DynamoDBBackend.transact_write_items
    patched = run()
    DynamoDBBackend.transact_write_items = fixed.__wrapped__  # type: ignore[attr-defined]
    try:
        plain = run()
    finally:
        DynamoDBBackend.transact_write_items = fixed
    assert patched == plain
    assert len(patched[0]) == 20 and len(patched[1]) == 10 and len(patched[2]) == 2
