"""Planning: as few calls as the vendor allows, one per recipient per call."""

from __future__ import annotations

import copy

import yaml

from tests.conftest import ROOT
from trigger_relay.pipeline.planning import Delivery, plan_calls
from trigger_relay.pipeline.routes import parse_routes

ROUTES = parse_routes((ROOT / "examples" / "routes.all-apis.yaml").read_text())
BY_NAME = {r.name: r for r in ROUTES.routes}


def deliveries(route_name: str, values: list[dict]) -> list[Delivery]:
    route = BY_NAME[route_name]
    return [
        Delivery(f"m{i}", f"e{i}", route, route.api.recipient_model.model_validate(v))
        for i, v in enumerate(values)
    ]


def test_1000_signups_make_5_zoho_calls_of_200() -> None:
    calls = plan_calls(
        deliveries("signup-welcome-workflow", [{"email": f"u{i}@x.com"} for i in range(1000)])
    )
    assert [len(c.recipients) for c in calls] == [200] * 5


def test_duplicate_emails_in_a_call_are_sent_once_for_every_record() -> None:
    planned = deliveries(
        "signup-welcome-workflow",
        [{"email": "A@x.com"}, {"email": "a@X.com"}, {"email": "b@x.com"}],
    )
    (call,) = plan_calls(planned)
    assert [r.email for r in call.recipients] == ["A@x.com", "b@x.com"]
    assert [d.record_id for d in call.deliveries["a@x.com"]] == ["m0", "m1"]


def test_different_targets_are_different_calls() -> None:
    document = yaml.safe_load((ROOT / "examples" / "routes.all-apis.yaml").read_text())
    other = copy.deepcopy(document["routes"][0])  # no shared nodes: no YAML aliases
    other["name"] = "other-workflow"
    other["params"] = dict(other["params"], workflow_key="another")
    document["routes"].append(other)
    routes = {r.name: r for r in parse_routes(yaml.safe_dump(document)).routes}
    mixed = [
        Delivery(
            "m1",
            "e1",
            routes["signup-welcome-workflow"],
            routes["other-workflow"].api.recipient_model(email="a@x.com"),
        ),
        Delivery(
            "m2",
            "e2",
            routes["other-workflow"],
            routes["other-workflow"].api.recipient_model(email="a@x.com"),
        ),
    ]
    assert len(plan_calls(mixed)) == 2


def test_single_profile_apis_make_one_call_each_and_audiences_batch() -> None:
    singles = plan_calls(
        deliveries("order-shipped-launch", [{"email": f"u{i}@x.com"} for i in range(3)])
    )
    assert [len(c.recipients) for c in singles] == [1, 1, 1]
    audience = plan_calls(
        deliveries("segment-broadcast", [{"field_value": f"id{i}"} for i in range(2500)])
    )
    assert [len(c.recipients) for c in audience] == [1000, 1000, 500]
