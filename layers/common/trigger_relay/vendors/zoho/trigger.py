"""Zoho's "trigger into a workflow / journey" APIs: up to 200 emails a call.

Zoho Campaigns (zoho.com/campaigns/help/developers/trigger-contacts.html):
    POST /api/v1.1/workflow/{workflowkey}/action/trigger?details={...}
Zoho Marketing Automation (zoho.com/marketingautomation/help/developers/trigger-leads.html):
    POST /api/v1/journeys/{journeykey}/action/trigger?details={...}
Both take ``details`` = {"lead_email": "a,b,c", "triggerkey": ..., "listkey": ...} in the query
string and answer ``triggered_leads``, ``already_triggered`` and ``ignored_leads``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from trigger_relay.vendors.outcomes import CallResult, Outcome, RecipientOutcome
from trigger_relay.vendors.recipients import EmailRecipient
from trigger_relay.vendors.zoho.common import (
    DEFAULT_CODES,
    auth_headers,
    compact_json,
    error_result,
    read_body,
    service_url,
)

MAX_EMAILS = 200


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trigger_key: str = Field(min_length=1)
    list_key: str = Field(min_length=1)


class WorkflowParams(_Params):
    workflow_key: str = Field(min_length=1)


class JourneyParams(_Params):
    journey_key: str = Field(min_length=1)


@dataclass(frozen=True)
class ZohoTrigger:
    """One of Zoho's trigger APIs; `build` and `parse` are pure."""

    action: str
    service: str  # host prefix: campaigns.zoho.com, marketingautomation.zoho.com
    path: str  # with {key} for the workflow or journey key
    key_field: str
    params_model: type[_Params]
    vendor: str = "zoho"
    # Zoho answers a repeat as already_triggered: calling again is harmless (both trigger
    # pages' sample responses)
    deduplicates: bool = True
    needs_base_url: bool = True
    max_recipients: int = MAX_EMAILS
    recipient_model: type[EmailRecipient] = EmailRecipient

    @property
    def quota_api(self) -> str:
        return self.action

    def target(self, params: _Params) -> str:
        return f"{getattr(params, self.key_field)}/{params.trigger_key}/{params.list_key}"

    def base_url(self, data_centre: str, base_url: str | None) -> str:
        return service_url(self.service, data_centre, base_url)

    def check_mapping(self, params: _Params, fields: set[str]) -> None:
        if fields != {"email"}:
            raise ValueError("Zoho trigger routes map exactly one field: email")

    def chunk(
        self, recipients: list[EmailRecipient], params: _Params
    ) -> list[list[EmailRecipient]]:
        cap = self.max_recipients
        return [recipients[i : i + cap] for i in range(0, len(recipients), cap)]

    def build(
        self, recipients: list[EmailRecipient], params: _Params, *, token: str, base_url: str
    ) -> httpx.Request:
        if not 1 <= len(recipients) <= self.max_recipients:
            raise ValueError(f"a call takes 1 to {self.max_recipients} emails")
        details = {
            "lead_email": ",".join(r.email for r in recipients),
            "triggerkey": params.trigger_key,
            "listkey": params.list_key,
        }
        key = quote(getattr(params, self.key_field), safe="")
        return httpx.Request(
            "POST",
            base_url.rstrip("/") + self.path.format(key=key),
            params={"details": compact_json(details)},
            headers=auth_headers(token),
        )

    def parse(
        self,
        response: httpx.Response,
        recipients: list[EmailRecipient],
        lock_codes: frozenset[str] = frozenset(),
    ) -> CallResult:
        keys = [r.key for r in recipients]
        body = read_body(response, keys)
        if isinstance(body, CallResult):
            return body
        error = error_result(body, keys, DEFAULT_CODES.with_lock_codes(lock_codes))
        if error is not None:
            return error
        answered = {
            "triggered": _lowered(body.get("triggered_leads")),
            "already_triggered": _lowered(body.get("already_triggered")),
            "ignored": _lowered(body.get("ignored_leads")),
        }
        return CallResult({key: _outcome(key, answered) for key in keys}, vendor_code="200")


def _lowered(emails: object) -> set[str]:
    if isinstance(emails, str):  # a single email is sometimes a bare string
        emails = [emails]
    return {str(e).strip().lower() for e in emails or []} if isinstance(emails, list) else set()


def _outcome(key: str, answered: dict[str, set[str]]) -> RecipientOutcome:
    if key in answered["triggered"]:
        return RecipientOutcome(Outcome.DELIVERED, "triggered")
    if key in answered["already_triggered"]:
        return RecipientOutcome(Outcome.DELIVERED, "already_triggered")
    if key in answered["ignored"]:
        return RecipientOutcome(Outcome.REJECTED, "ignored by Zoho (not on the list or opted out)")
    # Not in the answer at all: sending again is safe (it would come back already_triggered).
    return RecipientOutcome(Outcome.RETRY, "not in Zoho's answer")


CAMPAIGNS_WORKFLOW = ZohoTrigger(
    action="zoho_campaigns.workflow_trigger",
    service="campaigns",
    path="/api/v1.1/workflow/{key}/action/trigger",
    key_field="workflow_key",
    params_model=WorkflowParams,
)

MA_JOURNEY = ZohoTrigger(
    action="zoho_marketing_automation.journey_trigger",
    service="marketingautomation",
    path="/api/v1/journeys/{key}/action/trigger",
    key_field="journey_key",
    params_model=JourneyParams,
)
