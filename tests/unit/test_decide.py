"""decide(): the one place that turns a record into an event, route verdicts and deliveries,
for the pipeline, `explain` and `send` alike."""

from __future__ import annotations

import json

from tests.helpers.relay import ACCOUNTS, LAUNCH, relay, route
from trigger_relay.pipeline.decide import decide
from trigger_relay.pipeline.relay import Status
from trigger_relay.pipeline.routes import parse_routes
from trigger_relay_cli.explain import explain
from trigger_relay_cli.operations import expected

SMS = route(
    "welcome-sms", "altcraft.trigger", "{id: 85, matching: phone}", mapping="{phone: user.phone}"
)
VIP = route(
    "vip",
    "altcraft.trigger",
    "{id: 86}",
    match="{type: user.signed_up, fields: {\"contains(user.tags, 'vip')\": true}}",
)
ROUTES = parse_routes(ACCOUNTS + LAUNCH + SMS + VIP)


def body(**user: object) -> str:
    return json.dumps({"id": "evt-1", "type": "user.signed_up", "user": user})


def test_each_route_gets_one_verdict_and_the_reasons_come_in_the_stored_order() -> None:
    # tags is a number: the vip route's condition cannot be evaluated; no phone: sms refused
    decision = decide(ROUTES, "m-1", body(email="a@x.co", tags=7), {})
    verdicts = {v.route.name: v for v in decision.verdicts}
    assert verdicts["welcome-launch"].delivery is not None
    assert verdicts["welcome-sms"].rejected and verdicts["welcome-sms"].delivery is None
    assert verdicts["vip"].rejected and verdicts["vip"].rejected.startswith("route vip:")
    assert decision.handled == ["welcome-launch", "welcome-sms", "vip"]
    assert decision.rejected[0].startswith("route vip:")  # match errors first, then recipients
    assert [d.route.name for d in decision.deliveries] == ["welcome-launch"]


def test_a_copy_handles_only_its_routes_and_a_route_that_is_gone_is_rejected() -> None:
    decision = decide(ROUTES, "m-2", body(email="a@x.co"), {}, "evt-1", ("welcome-launch", "old"))
    assert decision.handled == ["welcome-launch", "old"]
    assert decision.rejected == ["route old: no longer in the routes file or no longer matching"]


def test_an_event_no_route_takes_is_rejected_with_its_type() -> None:
    decision = decide(ROUTES, "m-3", json.dumps({"type": "order.placed"}), {})
    assert decision.handled == [] and decision.deliveries == []
    assert decision.rejected == ["no route matches event type 'order.placed'"]


def test_explain_and_send_say_what_the_pipeline_decides() -> None:
    text = body(email="a@x.co", tags=7)
    lines = "\n".join(explain(json.loads(text), ROUTES, source_prefix=""))
    assert "+ welcome-launch: altcraft.trigger" in lines
    assert "x welcome-sms: REJECTED" in lines
    assert "x vip: REJECTED - route vip:" in lines  # an evaluation error, not a crash
    event_id, keys = expected(text, "m-1", {}, ROUTES)
    assert event_id == "evt-1"
    assert keys == [f"evt-1#{name}" for name in decide(ROUTES, "m-1", text, {}).handled]


def test_explain_rejects_a_body_as_the_function_does() -> None:
    document = {"Records": [{"messageId": "m-9", "body": "[1, 2]"}]}
    lines = explain(document, ROUTES, source_prefix="")
    assert lines[0] == "record m-9: REJECTED - body is a JSON list, not an object"


def test_a_body_json_cannot_hold_is_rejected_not_a_crash() -> None:
    """An integer of more than 4300 digits: json.loads raises a plain ValueError."""
    huge = '{"type": "user.signed_up", "n": ' + "9" * 5000 + "}"
    decision = decide(ROUTES, "m-4", huge, {})
    assert decision.event is None
    assert decision.rejected == ["body is not JSON the relay can read: ValueError"]
    lines = explain({"Records": [{"messageId": "m-4", "body": huge}]}, ROUTES, source_prefix="")
    assert lines[0] == "record m-4: REJECTED - body is not JSON the relay can read: ValueError"
    assert expected(huge, "m-4", {}, ROUTES) == ("m-4", [])


def test_a_record_whose_routing_fails_unexpectedly_keeps_its_event_id() -> None:
    """floor() of an infinite number raises OverflowError inside jmespath: not a MatchError,
    so the whole record is rejected, under its own event id (rejected show finds it)."""
    routes = ACCOUNTS + route(
        "scored",
        "altcraft.trigger",
        "{id: 84}",
        match='{type: user.signed_up, fields: {"floor(user.score)": 5}}',
    )
    with relay(routes) as r:
        r.send(
            '{"id": "evt-9", "type": "user.signed_up", "user": {"email": "a@x.co", "score": 1e999}}'
        )
        report = r.pipeline().process(r.receive())
        assert set(report.statuses.values()) == {Status.REJECTED}
        (row,) = r.stored("rejected/")
        assert row["event_id"] == "evt-9"
        assert row["reasons"] == ["could not be routed: OverflowError"]


def test_a_body_nested_too_deep_for_json_is_rejected_by_explain_not_a_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000  # 200 kB: within SQS's size, beyond the parser's depth
    lines = explain({"Records": [{"messageId": "m-5", "body": deep}]}, ROUTES, source_prefix="")
    assert lines[0] == "record m-5: REJECTED - body is not JSON the relay can read: RecursionError"
