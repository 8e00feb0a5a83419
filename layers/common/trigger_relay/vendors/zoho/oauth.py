"""Zoho OAuth: an access token from the refresh-token grant, at the account's data centre.

POST https://accounts.zoho.{dc}/oauth/v2/token?refresh_token=..&client_id=..&client_secret=..
&grant_type=refresh_token answers {"access_token": .., "expires_in": 3600, "api_domain": ..}.
Zoho allows 10 access tokens per refresh token per 10 minutes, so tokens are cached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from trigger_relay.vendors.vendor import AccessToken, TokenError
from trigger_relay.vendors.zoho.common import service_url


class ZohoClientSecret(BaseModel):
    """The JSON a Zoho account's Secrets Manager secret holds."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr


def build_refresh(
    secret: ZohoClientSecret, data_centre: str, base_url: str | None
) -> httpx.Request:
    return httpx.Request(
        "POST",
        service_url("accounts", data_centre, base_url) + "/oauth/v2/token",
        params={
            "refresh_token": secret.refresh_token.get_secret_value(),
            "client_id": secret.client_id,
            "client_secret": secret.client_secret.get_secret_value(),
            "grant_type": "refresh_token",
        },
    )


def parse_refresh(response: httpx.Response, now: float) -> AccessToken:
    try:
        body = response.json()
    except ValueError as exc:
        raise TokenError(f"token answer is not JSON (HTTP {response.status_code})") from exc
    token = body.get("access_token") if isinstance(body, dict) else None
    if response.status_code != 200 or not token:
        error = body.get("error", "no access_token") if isinstance(body, dict) else "bad answer"
        raise TokenError(f"token refresh failed: HTTP {response.status_code}, {error}")
    return AccessToken(str(token), now + float(body.get("expires_in", 3600)))


class RefreshGrant:
    """The vendor descriptor's token grant: the account's secret is a ZohoClientSecret."""

    def build(
        self, secret: Mapping[str, Any], data_centre: str, base_url: str | None
    ) -> httpx.Request:
        return build_refresh(ZohoClientSecret.model_validate(secret), data_centre, base_url)

    def parse(self, response: httpx.Response, now: float) -> AccessToken:
        return parse_refresh(response, now)


REFRESH_GRANT = RefreshGrant()
