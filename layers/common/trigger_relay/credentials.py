"""Vendor credentials: secrets from Secrets Manager (cached), Zoho access tokens (cached)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from aws_lambda_powertools.utilities import parameters

from .routes import Account
from .vendors.zoho_oauth import AccessToken, ZohoClientSecret, build_refresh, parse_refresh

SECRET_MAX_AGE_SECONDS = 300


def read_secret(name: str) -> dict[str, Any]:
    """A JSON secret, cached by Powertools for a few minutes across warm invocations."""
    value = parameters.get_secret(name, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    if not isinstance(value, dict):
        raise ValueError(f"secret {name} must hold a JSON object")
    return value


class ZohoTokens:
    """Access tokens per account, minted by the refresh-token grant and reused until near expiry."""

    def __init__(
        self,
        http: httpx.Client,
        secrets: Callable[[str], dict[str, Any]] = read_secret,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._secrets = secrets
        self._clock = clock
        self._tokens: dict[str, AccessToken] = {}
        self._lock = threading.Lock()
        self.minted = 0

    def get(self, account_name: str, account: Account) -> str:
        with self._lock:
            token = self._tokens.get(account_name)
            if token is None or not token.fresh(self._clock()):
                token = self._mint(account)
                self._tokens[account_name] = token
            return token.value

    def invalidate(self, account_name: str) -> None:
        with self._lock:
            self._tokens.pop(account_name, None)

    def _mint(self, account: Account) -> AccessToken:
        secret = ZohoClientSecret.model_validate(self._secrets(account.secret))
        request = build_refresh(secret, account.data_centre, account.base_url)
        self.minted += 1
        return parse_refresh(self._http.send(request), self._clock())
