"""Quota status from the table: used slots, next free slot and lock state."""

from __future__ import annotations

from tests.helpers.offline import (
    TABLE,
    Clock,
)
from trigger_relay.stores.quota import Limit, QuotaGate
from trigger_relay_cli.status import format_status, quota_status


def test_status_reports_usage_next_slot_and_lock(dynamodb) -> None:
    clock = Clock()
    gate = QuotaGate(TABLE, dynamodb, clock)
    limit = Limit(calls=500, window_seconds=300, safety_margin_seconds=2)
    for _ in range(10):
        gate.reserve("zoho#zoho-main#zoho_campaigns.workflow_trigger", limit)
    gate.record_lock("zoho#zoho-main#zoho_marketing_automation.journey_trigger", 1800)

    statuses = {s.key.rsplit("#", 1)[1]: s for s in quota_status(dynamodb, TABLE, now=clock.now)}
    workflow = statuses["zoho_campaigns.workflow_trigger"]
    assert workflow.used_in_window == 10
    assert workflow.granted_total == 10
    assert abs(workflow.next_free_in - 10 * limit.interval) < 0.01
    assert workflow.locked_until is None
    journey = statuses["zoho_marketing_automation.journey_trigger"]
    assert journey.locked_until == clock.now + 1800 and journey.locks_recorded == 1
    lines = format_status(list(statuses.values()), now=clock.now)
    assert any("workflow_trigger" in line and "10/500" in line for line in lines)
    assert any("journey_trigger" in line and "LOCKED 1,800 s more" in line for line in lines)
