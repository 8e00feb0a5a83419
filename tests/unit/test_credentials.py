"""Zoho OAuth tokens: minted once for all Lambdas, refreshed once on an invalid-token answer."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.offline import (
    SECRET,
    TABLE,
    Clock,
    FakeZoho,
    offline_caller,
)
from trigger_relay.pipeline.routes import Account
from trigger_relay.stores.credentials import (
    Credentials,
    CredentialsError,
    MintedTokens,
    SharedTokenStore,
)
from trigger_relay.vendors.outcomes import CallResult, Outcome
from trigger_relay.vendors.recipients import EmailRecipient
from trigger_relay.vendors.zoho.trigger import CAMPAIGNS_WORKFLOW, WorkflowParams

ACCOUNT = Account(vendor="zoho", data_centre="eu", secret="trigger-relay/zoho")


def test_twenty_cold_starts_mint_one_token(dynamodb) -> None:
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


def test_an_invalid_token_is_refreshed_once_and_the_call_retried(dynamodb) -> None:
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


def test_a_token_that_stays_invalid_is_not_refreshed_forever(dynamodb) -> None:
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
