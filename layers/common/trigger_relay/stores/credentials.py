"""Vendor credentials: secrets from Secrets Manager (cached), and minted access tokens (cached,
shared by every Lambda) for vendors whose descriptor has a token grant."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError
from pydantic import ValidationError

from trigger_relay.pipeline.routes import Account
from trigger_relay.vendors import registry
from trigger_relay.vendors.vendor import AccessToken, TokenError, TokenGrant, Vendor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SECRET_MAX_AGE_SECONDS = 300
MIN_MINT_SECONDS = 1.0  # a token is not minted with less time than this before the deadline


def read_secret(name: str) -> dict[str, Any]:
    """A JSON secret, cached by Powertools for a few minutes across warm invocations."""
    value = parameters.get_secret(name, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    if not isinstance(value, dict):
        raise ValueError(f"secret {name} must hold a JSON object")
    return value


class SharedTokenStore:
    """Access tokens in DynamoDB, shared by every Lambda, with a short lease for minting.

    Vendors limit minting (Zoho: at most 10 access tokens per refresh token per 10 minutes),
    so cold starts must not each mint one. The item ``token#<account>`` holds the token and
    its expiry; whoever takes the lease mints, the others wait briefly and read. The table is
    encrypted at rest.
    """

    LEASE_SECONDS = 10.0

    def __init__(
        self,
        table: str,
        client: DynamoDBClient,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._client = client
        self._clock = clock
        self._sleep = sleep

    def _key(self, account_name: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"token#{account_name}"}}

    def read(self, account_name: str) -> AccessToken | None:
        item = self._client.get_item(
            TableName=self._table, Key=self._key(account_name), ConsistentRead=True
        ).get("Item", {})
        if "token" not in item:
            return None
        return AccessToken(item["token"]["S"], float(item["expires_at"]["N"]))

    def take_lease(self, account_name: str) -> bool:
        now = self._clock()
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(account_name),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(now + self.LEASE_SECONDS)},
                    ":now": {"N": str(now)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def write(self, account_name: str, token: AccessToken) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(account_name),
            UpdateExpression="SET #t = :token, expires_at = :exp REMOVE lease_until",
            ExpressionAttributeNames={"#t": "token"},
            ExpressionAttributeValues={
                ":token": {"S": token.value},
                ":exp": {"N": str(token.expires_at)},
            },
        )

    def discard(self, account_name: str, value: str) -> None:
        """Forget a token the vendor refused, unless another Lambda already replaced it."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(account_name),
                UpdateExpression="REMOVE #t, expires_at",
                ConditionExpression="#t = :bad",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":bad": {"S": value}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


class MintedTokens:
    """Access tokens per account: in memory, then the shared store, then minted by the
    account's vendor's grant; reused until five minutes before they expire."""

    def __init__(
        self,
        http: httpx.Client,
        secrets: Callable[[str], dict[str, Any]] = read_secret,
        clock: Callable[[], float] = time.time,
        shared: SharedTokenStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._secrets = secrets
        self._clock = clock
        self._shared = shared
        self._sleep = sleep
        self._tokens: dict[str, AccessToken] = {}
        self._lock = threading.Lock()

    def get(self, account_name: str, account: Account, deadline: float | None = None) -> str:
        """The account's token. With a ``deadline`` (epoch s), waiting on another Lambda's
        lease and minting must end by then, or TokenError says so."""
        with self._lock:
            token = self._tokens.get(account_name)
            if token is None or not token.fresh(self._clock()):
                token = self._fetch(account_name, account, deadline)
                self._tokens[account_name] = token
            return token.value

    def invalidate(self, account_name: str) -> None:
        with self._lock:
            token = self._tokens.pop(account_name, None)
        if token is not None and self._shared is not None:
            self._shared.discard(account_name, token.value)

    def _fetch(self, account_name: str, account: Account, deadline: float | None) -> AccessToken:
        if self._shared is None:
            return self._mint(account, deadline)
        lease_ends = self._clock() + SharedTokenStore.LEASE_SECONDS
        while True:
            stored = self._shared.read(account_name)
            if stored is not None and stored.fresh(self._clock()):
                return stored
            if self._shared.take_lease(account_name):
                token = self._mint(account, deadline)
                self._shared.write(account_name, token)
                return token
            if self._clock() >= lease_ends:  # the lease holder died: mint ourselves
                return self._mint(account, deadline)
            if deadline is not None and self._clock() + 0.2 >= deadline:
                raise TokenError("no time left to wait for another Lambda's token")
            self._sleep(0.2)

    def _mint(self, account: Account, deadline: float | None = None) -> AccessToken:
        grant = _grant(account)
        request = grant.build(self._secrets(account.secret), account.data_centre, account.base_url)
        if deadline is not None:
            left = deadline - self._clock()
            if left < MIN_MINT_SECONDS:
                raise TokenError("no time left to mint a token")
            # the four phases together within the time left
            request.extensions["timeout"] = httpx.Timeout(
                min(10.0, left / 4), connect=min(3.0, left / 4)
            ).as_dict()
        return grant.parse(self._http.send(request), self._clock())


def _vendor(account: Account) -> Vendor:
    found = registry.vendor(account.vendor)
    if found is None:  # a validated account names a vendor
        raise KeyError(account.vendor)
    return found


def _grant(account: Account) -> TokenGrant:
    grant = _vendor(account).grant
    if grant is None:
        raise TokenError(f"{account.vendor} accounts carry their secret's token, none is minted")
    return grant


class CredentialsError(RuntimeError):
    """An account's credentials cannot be had now. The message names the secret, never its value."""


def _safe_reason(exc: Exception, secret: str) -> str:
    """Why credentials failed, in words that quote nothing from the secret's value."""
    if isinstance(exc, TokenError):
        return str(exc)
    if isinstance(exc, ValidationError):
        fields = sorted({".".join(str(p) for p in e["loc"]) or "value" for e in exc.errors()})
        return f"secret {secret} lacks or mistypes {fields}"
    if isinstance(exc, ClientError):
        return f"secret {secret}: {exc.response.get('Error', {}).get('Code', 'AWS error')}"
    if isinstance(exc, httpx.HTTPError):
        return f"token endpoint unreachable: {type(exc).__name__}"
    if isinstance(exc, CredentialsError):
        return str(exc)
    return f"secret {secret}: {type(exc).__name__}"


class Credentials:
    """The token a call carries: minted by the vendor's grant, or the secret's token field.

    Every failure (a missing or malformed secret, a refused token mint, an unreachable token
    endpoint) comes out as CredentialsError, so the caller can defer that account's records
    and go on with the others."""

    def __init__(
        self, minted: MintedTokens, secrets: Callable[[str], dict[str, Any]] = read_secret
    ) -> None:
        self._minted = minted
        self._secrets = secrets

    def token(self, account_name: str, account: Account, deadline: float | None = None) -> str:
        try:
            vendor = _vendor(account)
            if vendor.grant is not None:
                return self._minted.get(account_name, account, deadline)
            field = vendor.token_field
            token = self._secrets(account.secret).get(field)
            if not isinstance(token, str) or not token:
                raise CredentialsError(f"secret {account.secret} holds no {field!r}")
            return token
        except Exception as exc:
            raise CredentialsError(_safe_reason(exc, account.secret)) from None

    def invalidate(self, account_name: str, account: Account) -> None:
        if _vendor(account).grant is not None:
            self._minted.invalidate(account_name)
