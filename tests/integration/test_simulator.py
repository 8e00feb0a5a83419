"""The vendor simulator answers as the vendors' pages document (tests/contracts/README.md),
over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from trigger_relay_local.simulator import SimConfig, Simulator
from trigger_relay_local.simulator.state import Campaign, Flow, MailingList

WORKFLOW, TRIGGER, LIST = "wf1", "tk1", "lk1"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimConfig()
    config.lists[LIST] = MailingList("list3", contacts={"a@x.com", "b@x.com"})
    config.workflows[WORKFLOW] = Flow(TRIGGER, LIST)
    config.workflows["off"] = Flow(TRIGGER, LIST, active=False)
    config.campaigns["c1"] = Campaign({"sentcontacts": 45})
    config.campaigns["ab"] = Campaign({}, error_code="6601")
    config.limits["zoho_campaigns.workflow_trigger"] = (3, 60.0, 60.0)
    config.altcraft_triggers.add("8")
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def http(sim: Simulator) -> httpx.Client:
    token = sim.access_token()
    return httpx.Client(base_url=sim.url, headers={"Authorization": f"Zoho-oauthtoken {token}"})


def trigger(http: httpx.Client, key: str = WORKFLOW, **details: str) -> dict:
    body = {"lead_email": "a@x.com", "triggerkey": TRIGGER, "listkey": LIST, **details}
    body = {k: v for k, v in body.items() if v is not None}
    return http.post(
        f"/api/v1.1/workflow/{key}/action/trigger", params={"details": json.dumps(body)}
    ).json()


def test_trigger_answers_per_email(http: httpx.Client) -> None:
    first = trigger(http, lead_email="a@x.com,zz@x.com")
    assert (first["code"], first["triggered_leads"], first["ignored_leads"]) == (
        "200",
        ["a@x.com"],
        ["zz@x.com"],
    )
    assert trigger(http)["already_triggered"] == ["a@x.com"]


@pytest.mark.parametrize(
    ("key", "details", "code"),
    [
        ("nope", {}, "9002"),
        ("off", {}, "9006"),
        (WORKFLOW, {"listkey": None}, "9007"),
        (WORKFLOW, {"listkey": "other"}, "400"),
        (WORKFLOW, {"lead_email": ",".join(f"u{i}@x.com" for i in range(201))}, "9004"),
    ],
)
def test_trigger_error_codes_come_with_http_200(
    http: httpx.Client, key: str, details: dict, code: str
) -> None:
    response = http.post(
        f"/api/v1.1/workflow/{key}/action/trigger",
        params={
            "details": json.dumps(
                {
                    k: v
                    for k, v in {
                        "lead_email": "a@x.com",
                        "triggerkey": TRIGGER,
                        "listkey": LIST,
                        **details,
                    }.items()
                    if v is not None
                }
            )
        },
    )
    assert response.status_code == 200 and response.json()["code"] == code


def test_passing_the_limit_locks_the_api(http: httpx.Client, sim: Simulator) -> None:
    codes = [trigger(http)["code"] for _ in range(5)]
    assert codes == ["200", "200", "200", "2008", "2008"]
    assert sim.state.limits["zoho_campaigns.workflow_trigger"].locks == 1


def test_bad_token_is_refused(sim: Simulator) -> None:
    answer = httpx.post(
        f"{sim.url}/api/v1.1/workflow/{WORKFLOW}/action/trigger",
        headers={"Authorization": "Zoho-oauthtoken nope"},
    ).json()
    assert answer["code"] == "INVALID_TOKEN"


def test_recipients_pages_in_json_and_xml(http: httpx.Client) -> None:
    page = http.post(
        "/api/v1.1/getcampaignrecipientsdata",
        params={
            "resfmt": "JSON",
            "campaignkey": "c1",
            "action": "sentcontacts",
            "fromindex": "41",
            "range": "20",
        },
    ).json()
    assert page["code"] == "0" and len(page["list_of_details"]) == 5
    xml = http.post(
        "/api/v1.1/getcampaignrecipientsdata",
        params={
            "resfmt": "XML",
            "campaignkey": "c1",
            "action": "sentcontacts",
            "fromindex": "1",
            "range": "20",
        },
    ).text
    assert xml.count("<contact>") == 20 and "<code>0</code>" in xml
    assert (
        http.post(
            "/api/v1.1/getcampaignrecipientsdata",
            params={"resfmt": "JSON", "campaignkey": "zz", "action": "sentcontacts"},
        ).json()["code"]
        == "6002"
    )
    assert (
        "<code>6601</code>"
        in http.post(
            "/api/v1.1/getcampaignrecipientsdata",
            params={"resfmt": "XML", "campaignkey": "ab", "action": "sentcontacts"},
        ).text
    )


def test_altcraft_bulk_refuses_a_body_over_10_mb(sim: Simulator) -> None:
    big = json.dumps(
        {
            "token": sim.state.config.altcraft_token,
            "trigger_id": 8,
            "data": [{"email": f"user{i:08d}@example.com"} for i in range(400_000)],
        }
    )
    assert len(big) > 10 * 1024 * 1024
    answer = httpx.post(
        f"{sim.url}/api/v1.1/campaigns/triggers/start_batch",
        content=big,
        headers={"Content-Type": "application/json"},
        timeout=30,
    ).json()
    assert answer == {
        "error": 400,
        "error_debug": "http: request body too large",
        "error_text": "Invalid request",
    }


def test_faults_switch_on_and_off(http: httpx.Client, sim: Simulator) -> None:
    sim.set_faults(status=503, times=1)
    response = http.post(f"/api/v1.1/workflow/{WORKFLOW}/action/trigger", params={"details": "{}"})
    assert response.status_code == 503
    assert trigger(http)["code"] == "200"
    assert [r.answer_code for r in sim.received("zoho_campaigns.workflow_trigger")] == [
        "503",
        "200",
    ]
