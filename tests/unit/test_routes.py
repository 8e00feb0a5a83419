"""Routes: validation errors that name the route and field, matching, mapping."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from trigger_relay.pipeline.decide import route_event
from trigger_relay.pipeline.events import InboundEvent
from trigger_relay.pipeline.routes import BadRecipient, RoutesError, load_routes, parse_routes

EXAMPLE = ROOT / "layers" / "common" / "routes.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def event(
    type_: str | None, data: dict, source: str | None = None, attributes=None
) -> InboundEvent:
    return InboundEvent(
        event_id="e", type=type_, source=source, data=data, attributes=attributes or {}
    )


def test_the_shipped_example_is_valid() -> None:
    routes = load_routes(EXAMPLE)
    assert {r.action for r in routes.routes} >= {
        "zoho_campaigns.workflow_trigger",
        "zoho_marketing_automation.journey_trigger",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["routes"][0]["params"].pop("trigger_key"),
            "route 'signup-welcome-workflow' (routes.0.trigger_key): Field required",
        ),
        (lambda d: d["routes"][0].update(action="zoho.nope"), "unknown action 'zoho.nope'"),
        (
            lambda d: d["routes"][0].update(account="nobody"),
            "(signup-welcome-workflow): unknown account 'nobody'",
        ),
        (
            lambda d: d["routes"][0]["mapping"].update(email="user..email"),
            "bad JMESPath 'user..email'",
        ),
        (lambda d: d["routes"][0]["mapping"].update(phone="user.phone"), "does not take"),
        (lambda d: d["routes"][0].update(mapping={}), "mapping lacks ['email']"),
        (lambda d: d["routes"][1].update(name=d["routes"][0]["name"]), "duplicate route name"),
        (
            lambda d: d["accounts"]["zoho-main"].update(data_centre="mars"),
            "data_centre must be one of",
        ),
        (lambda d: d["routes"][0].update(match={}), "match needs at least one of"),
        (
            lambda d: d["routes"][0].update(colour="red"),
            "(routes.0.colour): Extra inputs are not permitted",
        ),
    ],
)
def test_a_bad_file_names_the_route_and_field(change, message: str) -> None:
    document = copy.deepcopy(example())
    change(document)
    with pytest.raises(RoutesError) as error:
        parse_routes(yaml.safe_dump(document), "routes.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("routes.yaml: ")


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(RoutesError, match="not valid YAML"):
        parse_routes("a: [", "f")
    with pytest.raises(RoutesError, match="must be a mapping"):
        parse_routes("- 1", "f")
    with pytest.raises(RoutesError, match="cannot read"):
        load_routes(tmp_path / "missing.yaml")


def test_matching_by_type_source_fields_and_attributes() -> None:
    document = example()
    document["routes"][0]["match"] = {
        "type": ["user.signed_up", "user.invited"],
        "source": "app.users",
        "fields": {"user.plan": "pro"},
        "attributes": {"tenant": "eu"},
    }
    routes = parse_routes(yaml.safe_dump(document))
    route = routes.routes[0]
    good = event("user.invited", {"user": {"plan": "pro"}}, "app.users", {"tenant": "eu"})
    assert route.match.why_not(good) is None
    assert "plan" in route.match.why_not(
        event("user.invited", {"user": {"plan": "free"}}, "app.users", {"tenant": "eu"})
    )
    assert "source" in route.match.why_not(event("user.invited", {}, "app.other"))
    assert "type" in route.match.why_not(event("order.placed", {}, "app.users"))
    assert "attribute tenant" in route.match.why_not(
        event("user.invited", {"user": {"plan": "pro"}}, "app.users")
    )


def test_one_event_can_fire_several_routes() -> None:
    document = example()
    second = copy.deepcopy(document["routes"][1])
    second.update(
        name="signup-journey", match={"type": "user.signed_up"}, mapping={"email": "user.email"}
    )
    document["routes"].append(second)
    routes = parse_routes(yaml.safe_dump(document))
    fired = route_event(routes, event("user.signed_up", {"user": {"email": "a@b.co"}}), "m-1")
    assert [d.route.name for d in fired.deliveries] == ["signup-welcome-workflow", "signup-journey"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({}, r"email \(user.email\) is missing"),
        ({"user": {"email": "not-an-email"}}, "email: Value error, not a valid email address"),
        ({"user": {"email": "a" * 250 + "@b.co"}}, "longer than 254"),
        ({"user": {"email": 42}}, "email: Input should be a valid string"),
    ],
)
def test_unmappable_events_say_why(data: dict, reason: str) -> None:
    route = load_routes(EXAMPLE).routes[0]
    with pytest.raises(BadRecipient, match=reason):
        route.recipient(event("user.signed_up", data))


def test_mapping_normalises_the_email() -> None:
    route = load_routes(EXAMPLE).routes[0]
    recipient = route.recipient(event("user.signed_up", {"user": {"email": "  Ann@Example.COM "}}))
    assert recipient.email == "Ann@example.com"
    assert recipient.key == "ann@example.com"


def test_a_hostile_routes_file_is_refused_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(20):
        this, previous = chr(98 + i), chr(97 + i)
        lines.append(f"{this}: &{this} [*{previous}, *{previous}, *{previous}, *{previous}]")
    bomb = "\n".join(lines)
    with pytest.raises(RoutesError, match=r"aliases \(\*a\) are not allowed"):
        parse_routes(bomb, "bomb.yaml")
    with pytest.raises(RoutesError, match="larger than"):
        parse_routes("#" * (2 * 1024 * 1024), "big.yaml")
    with pytest.raises(RoutesError, match="not valid YAML"):
        parse_routes("!!python/object/apply:os.system ['true']", "evil.yaml")
