"""Inbound events: app events on SQS, EventBridge envelopes, and bad bodies with reasons."""

from __future__ import annotations

import json

import pytest

from tests.conftest import EVENTS, ROOT
from trigger_relay.pipeline.events import MAX_EVENT_BYTES, BadEvent, from_eventbridge, from_sqs_body
from trigger_relay.pipeline.routes import BadRecipient, load_routes


def body_of(name: str) -> str:
    return json.loads((EVENTS / name).read_text())["Records"][0]["body"]


def test_app_event_from_sqs_uses_its_id() -> None:
    event = from_sqs_body(body_of("sqs-signup.json"), "m-1", {})
    assert (event.event_id, event.type, event.source) == ("evt-signup-0001", "user.signed_up", None)
    assert event.data["user"]["email"] == "patricia@zylker.com"


def test_eventbridge_envelope_on_sqs_is_unwrapped() -> None:
    event = from_sqs_body(body_of("sqs-eventbridge-signup.json"), "m-2", {"k": "v"})
    assert event.event_id == "6f1c2b9e-4d3a-4e8b-9a61-0c2d7e5f1a01"
    assert (event.type, event.source, event.detail_type) == (
        "user.signed_up",
        "app.users",
        "user.signed_up",
    )
    assert event.data == {"user": {"id": "u-1002", "email": "joel.raunch@zylker.com"}}
    assert event.attributes == {"k": "v"}


def test_direct_eventbridge_event() -> None:
    event = from_eventbridge(json.loads((EVENTS / "eventbridge-order.json").read_text()))
    assert event.type == "order.placed" and event.source == "app.orders"


def test_producer_idempotency_key_wins_over_message_id() -> None:
    body = json.dumps({"type": "user.signed_up", "idempotency_key": "k-9"})
    assert from_sqs_body(body, "m-3", {}).event_id == "k-9"
    assert from_sqs_body(json.dumps({"type": "x"}), "m-4", {}).event_id == "m-4"
    assert (
        from_sqs_body(json.dumps({"type": "x"}), "m-5", {"idempotency_key": "a-1"}).event_id
        == "a-1"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"type": "user.signed_up", ', "not JSON"),
        ("[1, 2]", "JSON list, not an object"),
        ('"text"', "JSON str"),
        ('{"user": {}}', "type: Field required"),
        ('{"type": 5}', "type: Input should be a valid string"),
        ('{"type": ""}', "type: String should have at least 1 character"),
        (
            '{"version": "0", "id": "1", "source": "a", "detail-type": "b", "detail": "no"}',
            "invalid EventBridge event: detail",
        ),
        ("x" * (MAX_EVENT_BYTES + 1), "larger than"),
    ],
)
def test_bad_bodies_get_a_reason(body: str, reason: str) -> None:
    with pytest.raises(BadEvent, match=reason):
        from_sqs_body(body, "m", {})


def test_bodies_that_are_not_utf_8_are_rejected_or_parsed_not_crashed() -> None:
    raw = b'{"type": "user.signed_up", "user": {"email": "\xff\xfe@x.com"}}'
    body = raw.decode("utf-8", "surrogateescape")  # what a lenient producer may put on SQS
    event = from_sqs_body(body, "m", {})
    assert event.type == "user.signed_up"
    route = load_routes(ROOT / "layers" / "common" / "routes.yaml").routes[0]
    with pytest.raises(BadRecipient, match="not valid UTF-8"):  # rejected, never sent
        route.recipient(event)
    with pytest.raises(BadEvent, match="not JSON"):
        from_sqs_body(b"\x80\x81 not json".decode("utf-8", "surrogateescape"), "m", {})
