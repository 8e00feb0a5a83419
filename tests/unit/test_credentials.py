"""Zoho OAuth tokens: minted once for all Lambdas, refreshed once on an invalid-token answer."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.unit.test_quota import TABLE, Clock, dynamodb  # noqa: F401 - the fixture
from trigger_relay.pipeline.routes import Account
from trigger_relay.pipeline.vendor_calls import VendorCaller
from trigger_relay.stores.credentials import (
    Credentials,
    CredentialsError,
    MintedTokens,
    SharedTokenStore,
)
from trigger_relay.stores.quota import QuotaGate
from trigger_relay.vendors.outcomes import CallResult, Outcome
from trigger_relay.vendors.recipients import EmailRecipient
from trigger_relay.vendors.zoho.trigger import CAMPAIGNS_WORKFLOW, WorkflowParams

SECRET = {"client_id": "1000.C", "client_secret": "s3cret", "refresh_token": "1000.r"}
ACCOUNT = Account(vendor="zoho", data_centre="eu", secret="trigger-relay/zoho")


def offline_caller(
    http: httpx.Client, quota_client: object, clock: Clock, tokens: MintedTokens | None = None
) -> VendorCaller:
    """A VendorCaller on a fake clock that never sleeps, with a minute to its deadline."""
    return VendorCaller(
        http,
        QuotaGate(TABLE, quota_client, clock),
        Credentials(tokens or MintedTokens(http, secrets=lambda _: SECRET, clock=clock)),
        deadline=clock.now + 60,
        clock=clock,
        sleep=lambda s: None,
    )


class FakeZoho:
    """Zoho's accounts server and trigger API, in an httpx transport."""

    def __init__(self, accounts_host: str = "accounts.zoho.eu") -> None:
        self.accounts_host = accounts_host
        self.minted: list[str] = []
        self.valid: set[str] = set()
        self.trigger_calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = urlsplit(str(request.url))
        if url.path == "/oauth/v2/token":
            query = parse_qs(url.query)
            assert url.netloc == self.accounts_host
            assert query["grant_type"] == ["refresh_token"] and query["refresh_token"] == ["1000.r"]
            token = f"1000.t{len(self.minted)}"
            self.minted.append(token)
            self.valid = {token}
            return httpx.Response(200, json={"access_token": token, "expires_in": 3600})
        self.trigger_calls.append(request)
        token = request.headers["Authorization"].removeprefix("Zoho-oauthtoken ")
        if token not in self.valid:
            return httpx.Response(200, json={"code": "INVALID_TOKEN", "status": "error"})
        emails = json.loads(parse_qs(url.query)["details"][0])["lead_email"].split(",")
        return httpx.Response(
            200, json={"code": "200", "status": "success", "triggered_leads": emails}
        )


def test_twenty_cold_starts_mint_one_token(dynamodb) -> None:  # noqa: F811
    zoho = FakeZoho()
    http = httpx.Client(transport=httpx.MockTransport(zoho))
    clock = Clock()
    store = SharedTokenStore(TABLE, dynamodb, clock)
    tokens = [
        MintedTokens(http, secrets=lambda _: SECRET, clock=clock, shared=store).get("zoho", ACCOUNT)
        for _ in range(20)
    ]
    assert zoho.minted == ["1000.t0"] and set(tokens) == {"1000.t0"}
    # An hour later it has expired, and one new token is minted for everyone
    clock.now += 3600
    later = {
        MintedTokens(http, secrets=lambda _: SECRET, clock=clock, shared=store).get("zoho", ACCOUNT)
        for _ in range(5)
    }
    assert later == {"1000.t1"}


def test_an_invalid_token_is_refreshed_once_and_the_call_retried(dynamodb) -> None:  # noqa: F811
    zoho = FakeZoho()
    http = httpx.Client(transport=httpx.MockTransport(zoho))
    clock = Clock()
    store = SharedTokenStore(TABLE, dynamodb, clock)
    tokens = MintedTokens(http, secrets=lambda _: SECRET, clock=clock, shared=store)
    tokens.get("zoho", ACCOUNT)
    zoho.valid = set()  # Zoho revokes it
    caller = offline_caller(http, dynamodb, clock, tokens)
    params = WorkflowParams(workflow_key="w", trigger_key="t", list_key="l")
    result = caller.call(
        "zoho", ACCOUNT, CAMPAIGNS_WORKFLOW, params, [EmailRecipient(email="a@b.co")]
    )
    assert isinstance(result, CallResult)
    assert [r.outcome for r in result.by_recipient.values()] == [Outcome.DELIVERED]
    assert len(zoho.trigger_calls) == 2 and len(zoho.minted) == 2
    assert store.read("zoho").value == "1000.t1"


def test_a_token_that_stays_invalid_is_not_refreshed_forever(dynamodb) -> None:  # noqa: F811
    zoho = FakeZoho()
    http = httpx.Client(transport=httpx.MockTransport(zoho))
    clock = Clock()

    class Revoking(MintedTokens):
        def get(self, account_name: str, account: Account, deadline: float | None = None) -> str:
            super().get(account_name, account, deadline)
            zoho.valid = set()
            return "1000.revoked"

    caller = offline_caller(
        http, dynamodb, clock, Revoking(http, secrets=lambda _: SECRET, clock=clock)
    )
    params = WorkflowParams(workflow_key="w", trigger_key="t", list_key="l")
    result = caller.call(
        "zoho", ACCOUNT, CAMPAIGNS_WORKFLOW, params, [EmailRecipient(email="a@b.co")]
    )
    assert [r.outcome for r in result.by_recipient.values()] == [Outcome.RETRY]
    assert len(zoho.trigger_calls) <= 3


def test_altcraft_token_comes_from_its_secret() -> None:
    creds = Credentials(MintedTokens(httpx.Client()), secrets=lambda name: {"token": f"tok-{name}"})
    account = Account(
        vendor="altcraft", base_url="https://a.example.com", secret="trigger-relay/ac"
    )
    assert creds.token("ac", account) == "tok-trigger-relay/ac"
    with pytest.raises(CredentialsError, match="holds no 'token'"):
        Credentials(MintedTokens(httpx.Client()), secrets=lambda name: {}).token("ac", account)
