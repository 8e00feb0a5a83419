"""The trigger pipeline on the local stack: batching, locks and deferral, counting every event."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.events import signups
from tests.helpers.iam import check_calls
from trigger_relay_local.lambda_runtime.emf import metric_totals
from trigger_relay_local.lambda_runtime.fleet import (
    PollerFleet,
    enqueue,
    queue_depth,
    wait_drained,
)
from trigger_relay_local.simulator import SimConfig
from trigger_relay_local.stack.embedded import Embedded, embedded_stack
from trigger_relay_local.stack.local_stack import write_routes

pytestmark = pytest.mark.integration

API = "zoho_campaigns.workflow_trigger"
LOCK_SECONDS = 3.0


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """The stack with the workflow API's lock scaled down to seconds, in vendor and limiter."""
    tmp = tmp_path_factory.mktemp("pipeline")
    limit = {
        "calls": 100,
        "window_seconds": 10,
        "lock_seconds": LOCK_SECONDS,
        "safety_margin_seconds": 0.2,
    }
    routes = write_routes(tmp / "routes.yaml", limits={"zoho-main": {API: limit}})
    config = SimConfig.demo()
    config.limits[API] = (100, 10.0, LOCK_SECONDS)
    with embedded_stack(tmp / "stack", config, routes_source=routes) as env:
        yield env


def workflow(env: Embedded):
    return next(iter(env.simulator.state.config.workflows.values()))


def send_signups(env: Embedded, first: int, count: int, tag: str) -> None:
    enqueue(env.stack, signups(tag, count, first))


def drain(env: Embedded, timeout: float = 120) -> dict[str, int]:
    fleet = PollerFleet(env.stack, env.stack.functions["TriggerFunction"], concurrency=1).start()
    try:
        assert wait_drained(env.stack, env.stack.outputs["IngestQueueUrl"], timeout=timeout)
    finally:
        stats = fleet.stop()
    return stats


def test_1000_signups_take_at_most_5_zoho_calls(scaled: Embedded) -> None:
    before = len(scaled.simulator.received(API))
    send_signups(scaled, 0, 1000, "batch")
    stats = drain(scaled)
    calls = scaled.simulator.received(API)[before:]
    sizes = [len(json.loads(c.query["details"])["lead_email"].split(",")) for c in calls]
    assert len(calls) <= 5, sizes
    assert sum(sizes) == 1000 and all(c.answer_code == "200" for c in calls)
    assert {f"batch{n}@example.com" for n in range(1000)} <= workflow(scaled).triggered
    assert stats["failed"] == 0


def test_a_vendor_lock_defers_events_until_it_ends_and_loses_none(scaled: Embedded) -> None:
    # Given the vendor answers the next call with its lock code (and locks the API)
    scaled.simulator.set_faults(lock=True, times=1)
    before = len(scaled.simulator.received(API))
    # When 400 signups arrive
    send_signups(scaled, 0, 400, "locked")
    stats = drain(scaled, timeout=60)
    # Then every one is triggered once the lock ends, none went to the DLQ, and the API
    # was not called again while the recorded lock lasted
    calls = scaled.simulator.received(API)[before:]
    locked = [c for c in calls if c.answer_code == "2008"]
    assert len(locked) == 1
    after_lock = [c for c in calls if c.at > locked[0].at]
    assert after_lock and min(c.at for c in after_lock) >= locked[0].at + LOCK_SECONDS - 0.05
    assert {f"locked{n}@example.com" for n in range(400)} <= workflow(scaled).triggered
    assert all(c.answer_code == "200" for c in after_lock)
    assert queue_depth(scaled.stack, scaled.stack.outputs["IngestDeadLetterQueueUrl"]) == 0
    assert stats["failed"] == 0  # deferred records are re-enqueued, not failed


def test_mixed_batch_every_event_accounted_for(scaled: Embedded, tmp_path: Path) -> None:
    valid = [
        {"type": "user.signed_up", "id": f"mix-{n}", "user": {"email": f"mix{n}@example.com"}}
        for n in range(30)
    ]
    invalid = [
        {"type": "user.signed_up", "id": f"bad-{n}", "user": {"email": f"bad{n}@"}}
        for n in range(5)
    ]
    unmappable = [{"type": "user.signed_up", "id": f"none-{n}", "user": {}} for n in range(5)]
    unknown = [{"type": "cart.abandoned", "id": f"unk-{n}"} for n in range(5)]
    bodies = [json.dumps(e) for e in valid + invalid + unmappable + unknown] + ["{oops"] * 5
    enqueue(scaled.stack, bodies)
    log_dir = scaled.stack.workdir / "logs"
    before = metric_totals(log_dir)
    drain(scaled)
    after = metric_totals(log_dir)
    delta = {k: after[k] - before.get(k, 0) for k in after}

    assert delta["EventsIn"] == 50
    assert delta["EventsDelivered"] == 30 and delta["EventsRejected"] == 20
    assert delta.get("EventsRetry", 0) == 0 and delta.get("EventsDeferred", 0) == 0
    assert {f"mix{n}@example.com" for n in range(30)} <= workflow(scaled).triggered

    s3 = scaled.stack.client("s3")
    bucket = scaled.stack.outputs["RecipientsBucketName"]
    stored = []
    for item in s3.list_objects_v2(Bucket=bucket, Prefix="rejected/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        stored += [json.loads(line) for line in gzip.decompress(body).splitlines()]
    reasons = [r["reasons"][0] for r in stored]
    assert sum("not a valid email" in r for r in reasons) == 5
    assert sum("is missing" in r for r in reasons) == 5
    assert sum("no route matches event type 'cart.abandoned'" in r for r in reasons) == 5
    assert sum("not JSON" in r for r in reasons) == 5


def test_the_trigger_role_allows_every_call_it_made(scaled: Embedded) -> None:
    check_calls(scaled, "TriggerFunction")
