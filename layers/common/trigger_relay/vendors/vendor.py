"""What the relay knows about a vendor, in one place: its trigger APIs and their documented
limits, how an account is reached, and how a call gets its token.

Each vendor package in ``vendors/`` (``zoho/``, ``altcraft/``) describes itself with one
``VENDOR = Vendor(...)`` in its ``__init__``; registry.py finds them. Nothing outside
``vendors/`` names a vendor: routes, credentials, the caller and the CLI ask the descriptor.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from trigger_relay.stores.quota import Limit
from trigger_relay.vendors.outcomes import CallResult


class TriggerApi(Protocol):
    """One vendor API: pure `chunk`, `build` and `parse`; no I/O."""

    # read-only: the APIs are frozen dataclasses
    @property
    def action(self) -> str: ...

    @property
    def vendor(self) -> str: ...

    @property
    def deduplicates(self) -> bool:
        """A repeated call is harmless: the vendor recognises it."""

    @property
    def needs_base_url(self) -> bool:
        """Calls go to the account's host (not to a full URL given in the params)."""

    @property
    def params_model(self) -> Any: ...

    @property
    def recipient_model(self) -> Any: ...

    @property
    def max_recipients(self) -> int: ...

    @property
    def quota_api(self) -> str: ...

    def target(self, params: Any) -> str: ...

    def base_url(self, data_centre: str, base_url: str | None) -> str | None: ...

    def check_mapping(self, params: Any, fields: set[str]) -> None: ...

    def chunk(self, recipients: list[Any], params: Any) -> list[list[Any]]: ...

    def build(
        self, recipients: list[Any], params: Any, *, token: str, base_url: str
    ) -> httpx.Request: ...

    def parse(
        self, response: httpx.Response, recipients: list[Any], lock_codes: frozenset[str] = ...
    ) -> CallResult:
        """What the answer means per recipient; ``lock_codes`` are the account's own extra
        answer codes that mean "locked" (routes file: ``lock_codes``)."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # epoch seconds

    def fresh(self, now: float, margin: float = 300.0) -> bool:
        return now < self.expires_at - margin


class TokenError(RuntimeError):
    """The vendor refused to mint a token; the reason names no secret."""


class TokenGrant(Protocol):
    """Calls carry a short-lived token that the account's secret mints (an OAuth grant).
    Both steps are pure; stores.credentials.MintedTokens does the I/O, caches and shares."""

    def build(
        self, secret: Mapping[str, Any], data_centre: str, base_url: str | None
    ) -> httpx.Request:
        """The mint request. Raises pydantic's ValidationError when the secret lacks a field."""

    def parse(self, response: httpx.Response, now: float) -> AccessToken:
        """The minted token, or TokenError."""


@dataclass(frozen=True)
class Vendor:
    """One vendor, as the routes file's ``vendor:`` names it."""

    name: str
    apis: tuple[TriggerApi, ...]
    # Documented call limits by quota API (an action, or another API that shares the quota)
    limits: Mapping[str, Limit]
    # How a call gets its token: minted by this grant from the account's secret (whose shape
    # the grant's build validates), or, without one, the secret's ``token_field`` as it is
    grant: TokenGrant | None = None
    token_field: str = "token"  # noqa: S105 - the name of a field, not a secret
    # An account's ``data_centre`` must be one of these, and is this one when not given;
    # None: the vendor has no such notion
    data_centres: Collection[str] | None = None
    default_data_centre: str = ""

    def check_account(self, data_centre: str) -> str | None:
        """Why an account of this vendor is invalid, or None."""
        if self.data_centres is not None and data_centre not in self.data_centres:
            return f"data_centre must be one of {sorted(self.data_centres)}"
        return None
