"""Helpers for tests that run the domain offline: moto in process, a fixed clock, fake vendors
in an httpx transport."""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs, urlsplit

import httpx

from trigger_relay.pipeline.vendor_calls import VendorCaller
from trigger_relay.stores.credentials import Credentials, MintedTokens
from trigger_relay.stores.quota import QuotaGate

TABLE = "quota"
# Examples per property test: 30 in `make test` and CI; `make unit`, the quick loop, asks for
# fewer through TRIGGER_RELAY_EXAMPLES.
PROPERTY_EXAMPLES = int(os.environ.get("TRIGGER_RELAY_EXAMPLES", "30"))
SECRET = {"client_id": "1000.C", "client_secret": "s3cret", "refresh_token": "1000.r"}


def create_table(client: object, name: str, key: str) -> None:
    """An on-demand table with a string hash key, as the template makes them."""
    client.create_table(  # type: ignore[attr-defined]
        TableName=name,
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Nowhere:
    def park(self, records: object) -> dict[str, str]:
        return {}

    def store(self, records: object) -> None:
        return None


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
