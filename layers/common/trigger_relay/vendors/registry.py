"""Every trigger API by the action name the routes file uses, with its documented limit."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from trigger_relay.stores.quota import Limit
from trigger_relay.vendors.altcraft_bulk import ALTCRAFT_BULK
from trigger_relay.vendors.altcraft_link import ALTCRAFT_LINK
from trigger_relay.vendors.altcraft_trigger import ALTCRAFT_TRIGGER
from trigger_relay.vendors.outcomes import CallResult
from trigger_relay.vendors.zoho_trigger import CAMPAIGNS_WORKFLOW, MA_JOURNEY


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
        self, response: httpx.Response, recipients: list[Any], codes: Any = ...
    ) -> CallResult: ...


APIS: dict[str, TriggerApi] = {
    api.action: api
    for api in (CAMPAIGNS_WORKFLOW, MA_JOURNEY, ALTCRAFT_BULK, ALTCRAFT_TRIGGER, ALTCRAFT_LINK)
}

# Zoho's documented numbers: calls per 5 minutes, then a 30-minute lock. Altcraft documents
# no call limit; these defaults keep a runaway backlog polite and are meant to be overridden.
DEFAULT_LIMITS: dict[str, Limit] = {
    CAMPAIGNS_WORKFLOW.action: Limit(calls=500, window_seconds=300, lock_seconds=1800),
    MA_JOURNEY.action: Limit(calls=100, window_seconds=300, lock_seconds=1800),
    "zoho_campaigns.recipients": Limit(calls=500, window_seconds=300, lock_seconds=1800),
    ALTCRAFT_BULK.action: Limit(calls=600, window_seconds=60, lock_seconds=60),
    ALTCRAFT_TRIGGER.action: Limit(calls=6000, window_seconds=60, lock_seconds=60),
    ALTCRAFT_LINK.action: Limit(calls=6000, window_seconds=60, lock_seconds=60),
}
