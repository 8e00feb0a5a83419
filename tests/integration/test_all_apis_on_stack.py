"""Every vendor API of the example routes file, end to end on the local stack."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from xxhash import xxh64_hexdigest as xxh64_hex

from tests.conftest import ROOT
from tests.helpers.iam import check_calls
from trigger_relay_local.lambda_runtime.fleet import PollerFleet, enqueue, queue_depth, wait_drained
from trigger_relay_local.stack.embedded import Embedded, embedded_stack

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "examples" / "routes.all-apis.yaml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    with embedded_stack(tmp_path_factory.mktemp("all-apis"), routes_source=EXAMPLE) as env:
        yield env


def test_one_event_per_route_reaches_its_api(stack: Embedded) -> None:
    app_events = [
        {"type": "order.placed", "customer": {"email": "buyer@example.com"}},
        {"type": "loyalty.tier_changed", "member": {"custom_id": "YY"}},
        {"type": "loyalty.tier_changed", "member": {"custom_id": "AA"}},
        {
            "type": "order.shipped",
            "customer": {"email": "ship@example.com"},
            "order": {"id": "o-7", "carrier": "DHL"},
        },
        {"type": "password.reset_requested", "user": {"phone": "+79000000000"}},
        {"type": "segment.member_added", "member": {"custom_id": "IpHicQquekzYkufl"}},
        {"type": "segment.member_added", "member": {"custom_id": "xzFKLXeaJkCYHuMb"}},
        {
            "type": "cart.abandoned",
            "customer": {"email": "cart@example.com"},
            "cart": {"id": "c-9"},
        },
    ]
    events = stack.stack.client("events")
    queue = stack.stack.outputs["IngestQueueUrl"]
    enqueue(stack.stack, [json.dumps(e) for e in app_events])
    events.put_events(
        Entries=[
            {
                "Source": "app.users",
                "DetailType": "user.signed_up",
                "Detail": json.dumps({"user": {"email": "new@example.com"}}),
            }
        ]
    )
    fleet = PollerFleet(
        stack.stack, stack.stack.functions["TriggerFunction"], concurrency=1
    ).start()
    try:
        assert wait_drained(stack.stack, queue, timeout=90)
    finally:
        stats = fleet.stop()
    assert stats["failed"] == 0
    assert queue_depth(stack.stack, stack.stack.outputs["IngestDeadLetterQueueUrl"]) == 0

    received = {r.api for r in stack.simulator.received()}
    assert received >= {
        "zoho_campaigns.workflow_trigger",
        "zoho_marketing_automation.journey_trigger",
        "altcraft.bulk_trigger",
        "altcraft.trigger",
        "altcraft.trigger_link",
    }
    launched = sorted(stack.simulator.state.altcraft_launched)
    assert ("8", "new@example.com") in launched  # bulk by email (the EventBridge signup)
    assert ("85", "AA") in launched and ("85", "YY") in launched  # bulk by custom field, XML
    assert ("96", "ship@example.com") in launched  # v1.1 by email with content
    assert ("84", "+79000000000") in launched  # v1.1 by phone
    assert ("84", "IpHicQquekzYkufl") in launched and ("84", "xzFKLXeaJkCYHuMb") in launched
    link = "link:465ea6fedf0a75fa9ee0b5fb8f9d5fe89af34054909af8bb"
    assert (link, xxh64_hex(b"cart@example.com")) in launched

    by_api = {}
    for r in stack.simulator.received():
        by_api.setdefault(r.api, []).append(r)
    (xml_call,) = [r for r in by_api["altcraft.bulk_trigger"] if b"<xml>" in r.body]
    assert (
        xml_call.headers["content-type"].startswith("application/xml")
        and xml_call.answer_code == "0"
    )
    (segment,) = [r for r in by_api["altcraft.trigger"] if b"custom_request" in r.body]
    assert json.loads(segment.body)["custom_request"] == {
        "Custom_ID": {"$in": ["IpHicQquekzYkufl", "xzFKLXeaJkCYHuMb"]}
    }
    (shipped,) = [r for r in by_api["altcraft.trigger"] if b"ship@" in r.body]
    assert json.loads(shipped.body)["content"] == {"order_id": "o-7", "carrier": "DHL"}
    (cart,) = by_api["altcraft.trigger_link"]
    assert cart.method == "POST" and json.loads(cart.body) == {
        "fields": [{"name": "CartId", "value": "c-9", "option": 1}]
    }


def test_the_trigger_role_allows_every_call_it_made(stack: Embedded) -> None:
    check_calls(stack, "TriggerFunction")
