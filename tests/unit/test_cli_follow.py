"""What `send` waits for: every route an event matches, a refused recipient included, on the local
stack and on a deployed one alike."""

from __future__ import annotations

import json

from tests.helpers.relay import ACCOUNTS, LAUNCH, route
from trigger_relay.pipeline.routes import parse_routes
from trigger_relay_cli.__main__ import _routes
from trigger_relay_cli.operations import expected
from trigger_relay_cli.target import Target

NO_PHONE = route(
    "welcome-sms", "altcraft.trigger", "{id: 85, matching: phone}", mapping="{phone: user.phone}"
)


def test_a_route_whose_recipient_is_refused_is_waited_for_too() -> None:
    routes = parse_routes(ACCOUNTS + LAUNCH + NO_PHONE)
    body = json.dumps({"id": "evt-1", "type": "user.signed_up", "user": {"email": "a@x.co"}})
    event_id, keys = expected(body, "m-1", {}, routes)
    assert event_id == "evt-1"
    assert sorted(keys) == ["evt-1#welcome-launch", "evt-1#welcome-sms"]


def test_a_deployed_stack_is_followed_with_the_routes_file_its_layer_was_built_from() -> None:
    routes = _routes(None, Target("prod", {}))
    assert routes is not None and routes.routes
