"""Contract: Zoho's trigger APIs (tests/contracts/zoho), request and response, replayed exactly."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import httpx
import pytest

from tests.conftest import contract
from trigger_relay.vendors.outcomes import Outcome
from trigger_relay.vendors.recipients import EmailRecipient
from trigger_relay.vendors.zoho.common import service_url
from trigger_relay.vendors.zoho.trigger import CAMPAIGNS_WORKFLOW, MA_JOURNEY, ZohoTrigger

SAMPLES = {
    CAMPAIGNS_WORKFLOW.action: "zoho/campaigns-workflow-trigger",
    MA_JOURNEY.action: "zoho/marketing-automation-journey-trigger",
}
APIS = [CAMPAIGNS_WORKFLOW, MA_JOURNEY]


def sample_request_url(api: ZohoTrigger) -> str:
    return contract(f"{SAMPLES[api.action]}.request-url.txt")


def sample_response(api: ZohoTrigger) -> dict:
    return json.loads(contract(f"{SAMPLES[api.action]}.response.json"))


def params_from_sample(api: ZohoTrigger):
    url = sample_request_url(api)
    key = url.split(api.path.split("{key}")[0])[1].split("/")[0]
    details = json.loads(url.split("details=", 1)[1])
    params = api.params_model.model_validate(
        {api.key_field: key, "trigger_key": details["triggerkey"], "list_key": details["listkey"]}
    )
    recipients = [EmailRecipient(email=e) for e in details["lead_email"].split(",")]
    return params, recipients


@pytest.mark.parametrize("api", APIS, ids=lambda a: a.action)
def test_build_makes_the_documented_sample_request(api: ZohoTrigger) -> None:
    # Given the documented sample keys and emails
    params, recipients = params_from_sample(api)
    base = service_url(api.service, "com")
    # When the request is built
    request = api.build(recipients, params, token="1000.abc", base_url=base)
    # Then, decoded, it is the documented sample URL, with Zoho's headers, and POST
    assert unquote_plus(str(request.url)) == sample_request_url(api)
    assert request.method == "POST"
    assert request.headers["Authorization"] == "Zoho-oauthtoken 1000.abc"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.content == b""


@pytest.mark.parametrize("api", APIS, ids=lambda a: a.action)
def test_documented_sample_response_parses_to_its_outcomes(api: ZohoTrigger) -> None:
    _, recipients = params_from_sample(api)
    response = httpx.Response(200, json=sample_response(api))
    result = api.parse(response, recipients)
    assert {k: (v.outcome, v.detail) for k, v in result.by_recipient.items()} == {
        "patricia@zylker.com": (Outcome.DELIVERED, "already_triggered"),
        "john@zylker.com": (Outcome.DELIVERED, "already_triggered"),
        "joel.raunch@zylker.com": (
            Outcome.REJECTED,
            "ignored by Zoho (not on the list or opted out)",
        ),
    }


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("9007", Outcome.REJECTED),
        ("9002", Outcome.REJECTED),
        ("9006", Outcome.REJECTED),
        ("9004", Outcome.REJECTED),
        ("400", Outcome.REJECTED),
        ("2008", Outcome.LOCKED),
        ("1234", Outcome.RETRY),
    ],
)
@pytest.mark.parametrize("api", APIS, ids=lambda a: a.action)
def test_every_documented_error_code_arrives_as_http_200(
    api: ZohoTrigger, code: str, outcome: Outcome
) -> None:
    # Given Zoho's error shape: HTTP 200 with the code in the body
    _, recipients = params_from_sample(api)
    body = {"code": code, "message": "whatever Zoho says", "status": "error"}
    # When it is parsed
    result = api.parse(httpx.Response(200, json=body), recipients)
    # Then the body decides, for every recipient of the call
    assert {r.outcome for r in result.by_recipient.values()} == {outcome}
    assert result.vendor_code == code
    assert all(code in r.detail for r in result.by_recipient.values())


def test_configured_codes_also_mean_locked() -> None:
    _, recipients = params_from_sample(CAMPAIGNS_WORKFLOW)
    body = {"code": "2501", "status": "error"}
    codes = frozenset({"2501"})
    assert CAMPAIGNS_WORKFLOW.parse(httpx.Response(200, json=body), recipients, codes).locked


@pytest.mark.parametrize(
    ("response", "outcome", "token_invalid"),
    [
        (httpx.Response(503, text="busy"), Outcome.RETRY, False),
        (httpx.Response(429, text="slow down"), Outcome.LOCKED, False),
        # a 2xx Zoho may have acted on: uncertain (the caller repeats it: Zoho deduplicates)
        (httpx.Response(200, text="<html>not json</html>"), Outcome.UNCERTAIN, False),
        (httpx.Response(200, json=["a list"]), Outcome.UNCERTAIN, False),
        (httpx.Response(200, text=""), Outcome.UNCERTAIN, False),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), Outcome.UNCERTAIN, False),
        # a redirect is not followed, so nothing was triggered; a 414 is split by the pipeline
        (httpx.Response(301, headers={"location": "https://x.zoho.eu/"}), Outcome.REJECTED, False),
        (httpx.Response(414, text="URI too long"), Outcome.REJECTED, False),
        (
            httpx.Response(200, json={"code": "INVALID_TOKEN", "status": "error"}),
            Outcome.RETRY,
            True,
        ),
        (httpx.Response(401, text="unauthorised"), Outcome.RETRY, True),
    ],
)
def test_status_and_shape_failures(
    response: httpx.Response, outcome: Outcome, token_invalid: bool
) -> None:
    _, recipients = params_from_sample(CAMPAIGNS_WORKFLOW)
    result = CAMPAIGNS_WORKFLOW.parse(response, recipients)
    assert {r.outcome for r in result.by_recipient.values()} == {outcome}
    assert result.token_invalid is token_invalid


def test_an_email_missing_from_the_answer_is_retried_not_assumed() -> None:
    _, recipients = params_from_sample(CAMPAIGNS_WORKFLOW)
    body = {"code": "200", "status": "success", "triggered_leads": ["PATRICIA@zylker.com"]}
    result = CAMPAIGNS_WORKFLOW.parse(httpx.Response(200, json=body), recipients)
    assert result.by_recipient["patricia@zylker.com"].outcome is Outcome.DELIVERED
    assert result.by_recipient["john@zylker.com"].outcome is Outcome.RETRY


def test_a_call_takes_at_most_200_emails() -> None:
    params, _ = params_from_sample(CAMPAIGNS_WORKFLOW)
    many = [EmailRecipient(email=f"u{i}@example.com") for i in range(201)]
    with pytest.raises(ValueError, match="1 to 200"):
        CAMPAIGNS_WORKFLOW.build(many, params, token="t", base_url="https://campaigns.zoho.com")


@pytest.mark.parametrize(
    ("data_centre", "host"),
    [
        ("com", "zoho.com"),
        ("eu", "zoho.eu"),
        ("in", "zoho.in"),
        ("com.au", "zoho.com.au"),
        ("jp", "zoho.jp"),
        ("com.cn", "zoho.com.cn"),
        ("ca", "zohocloud.ca"),
        ("sa", "zoho.sa"),
    ],
)
def test_hosts_follow_the_data_centre(data_centre: str, host: str) -> None:
    assert service_url("campaigns", data_centre) == f"https://campaigns.{host}"
    assert service_url("accounts", data_centre) == f"https://accounts.{host}"
