"""Zoho as its API pages document it: OAuth, the two trigger APIs, and recipients data.

Handlers take the parsed request and answer (HTTP status, content type, body). Like Zoho, they
report errors with HTTP 200 and a ``code`` in the body.
"""

from __future__ import annotations

import json
import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from trigger_relay_local.simulator.state import (
    Answer,
    Flow,
    MailingList,
    Route,
    SimConfig,
    SimState,
)


def account_secret(config: SimConfig) -> dict[str, str]:
    """What a Zoho account's secret holds on the local stack: the simulator's OAuth client."""
    return {
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "refresh_token": config.refresh_token,
    }


TRIGGER_ERRORS = {
    "9007": "Mandatory field is not found",
    "9002": "Invalid custom workflow key",
    "9006": "custom workflow is currently inactive",
    "400": "Requested resource cannot be found",
    "9004": "Number of emails exceeded the limit. (limit:200)",
}
RECIPIENT_ERRORS = {
    "6601": "AB campaign cannot be sent to less than 4 recipients.",
    "6607": "Insufficient privileges to perform this action. Please contact the org admin.",
    "6303": "There are no contacts in the selected mailing list.",
    "6002": "Invalid campaign key (or) campaign is not yet sent.",
}
LOCK_CODE = "2008"


def _json(body: dict[str, Any], status: int = 200) -> Answer:
    return status, "application/json;charset=UTF-8", json.dumps(body).encode()


def error(code: str, message: str, uri: str, fmt: str = "JSON") -> Answer:
    """Zoho's error answer, in the format the request asked for (resfmt)."""
    if fmt.upper() == "XML":
        xml = (
            f'<response uri="{uri}" version="1.1"><status>error</status><code>{code}</code>'
            f"<message>{escape(message)}</message></response>"
        )
        return 200, "application/xml;charset=UTF-8", xml.encode()
    return _json({"code": code, "message": message, "status": "error", "uri": uri})


def mint_refused() -> Answer:
    """The accounts server's answer past 10 tokens per refresh token per 10 minutes."""
    return _json(
        {
            "error": "Access Denied",
            "error_description": "You have made too many requests "
            "continuously. Please try again after some time.",
        },
        status=400,
    )


def oauth_token(state: SimState, query: dict[str, str]) -> Answer:
    config = state.config
    if query.get("grant_type") != "refresh_token":
        return _json({"error": "unsupported_grant_type"})
    if (query.get("client_id"), query.get("client_secret")) != (
        config.client_id,
        config.client_secret,
    ):
        return _json({"error": "invalid_client"})
    if query.get("refresh_token") != config.refresh_token:
        return _json({"error": "invalid_code"})
    token = state.mint_token()
    if token is None:
        return mint_refused()
    return _json(
        {
            "access_token": token,
            "api_domain": "https://www.zohoapis.com",
            "token_type": "Bearer",
            "expires_in": int(config.token_ttl_seconds),
        }
    )


def trigger(
    state: SimState,
    flows: dict[str, Flow],
    key: str,
    query: dict[str, str],
    uri: str,
    version: str,
    kind: str,
) -> Answer:
    flow = flows.get(key)
    if flow is None:
        return error("9002", f"Invalid {kind} key", uri)
    if not flow.active:
        return error("9006", f"{kind} is currently inactive", uri)
    try:
        details = json.loads(query.get("details", ""))
    except ValueError:
        return error("9007", TRIGGER_ERRORS["9007"], uri)
    if not isinstance(details, dict) or not all(
        isinstance(details.get(k), str) and details.get(k)
        for k in ("lead_email", "triggerkey", "listkey")
    ):
        return error("9007", TRIGGER_ERRORS["9007"], uri)
    mailing_list = state.config.lists.get(details["listkey"])
    if (
        details["triggerkey"] != flow.trigger_key
        or details["listkey"] != flow.list_key
        or mailing_list is None
    ):
        return error("400", TRIGGER_ERRORS["400"], uri)
    emails = [e.strip() for e in details["lead_email"].split(",") if e.strip()]
    if len(emails) > 200:
        return error("9004", TRIGGER_ERRORS["9004"], uri)
    triggered, already, ignored = [], [], []
    with state.mutex:
        for email in emails:
            if not mailing_list.has(email):
                ignored.append(email)
            elif email.lower() in flow.triggered:
                already.append(email)
            else:
                flow.triggered.add(email.lower())
                state.zoho_triggered_new.append((flow.trigger_key, email.lower()))
                triggered.append(email)
    return _json(
        {
            "code": "200",
            "already_triggered": already,
            "list_key": details["listkey"],
            "ignored_leads": ignored,
            "list_name": mailing_list.name,
            "version": version,
            "url": uri,
            "triggered_leads": triggered,
            "status": "success",
        }
    )


def _recipient_row(index: int, action: str) -> dict[str, str]:
    sent_ms = 1375456161000 + index * 1000
    return {
        "phone": "null",
        "timezone": "null",
        "contactstatus": "active",
        "contactemailaddress": f"recipient{index}@example.com",
        "sent_time": str(sent_ms),
        "lastname": f"Last{index}",
        "sentdate": "02 Aug 2013, 12:39 PM",
        "firstname": f"First{index}",
        "contactid": str(303000014269257 + index),
        "companyname": "null",
    }


_XML_NAMES = {
    "contactemailaddress": "contact_email",
    "firstname": "first_name",
    "lastname": "last_name",
    "companyname": "company_name",
    "sentdate": "added_time",
}


def recipients(state: SimState, query: dict[str, str], uri: str) -> Answer:
    fmt = query.get("resfmt", "XML").upper()
    campaign = state.config.campaigns.get(query.get("campaignkey", ""))
    action = query.get("action", "")
    if campaign is None:
        return _recipients_error(fmt, "6002", uri)
    if campaign.error_code:
        return _recipients_error(fmt, campaign.error_code, uri)
    try:
        start = int(query.get("fromindex", "1"))
        size = int(query.get("range", "20"))
    except ValueError:
        return _recipients_error(fmt, "9007", uri)
    total = campaign.recipients.get(action, 0)
    indices = range(max(1, start), min(total, start + size - 1) + 1)
    rows = [_recipient_row(i, action) for i in indices]
    if fmt == "JSON":
        return _json(
            {
                "requestdetails": {"range": size, "action": action, "fromindex": start},
                "status": "success",
                "list_of_details": rows,
                "code": "0",
                "uri": uri,
                "version": "1.1",
            }
        )
    contacts = "".join(
        "<contact>"
        + "".join(
            f"<fl val={quoteattr(_XML_NAMES.get(k, k))}>{escape(v)}</fl>" for k, v in row.items()
        )
        + "</contact>"
        for row in rows
    )
    xml = (
        f'<response uri="{uri}" version="1.1"><status>success</status><code>0</code>'
        f"<range>{size}</range><action>{escape(action)}</action><fromindex>{start}</fromindex>"
        f'<campaign_details><fl val="email_status">Sent</fl></campaign_details>'
        f"<contacts>{contacts}</contacts></response>"
    )
    return 200, "application/xml;charset=UTF-8", xml.encode()


def _recipients_error(fmt: str, code: str, uri: str) -> Answer:
    return error(code, RECIPIENT_ERRORS.get(code, TRIGGER_ERRORS.get(code, "error")), uri, fmt)


# The endpoints, by the API names the relay's quota uses (the oauth one is the accounts server)
ROUTES: list[Route] = [
    (
        "POST",
        re.compile(r"^/oauth/v2/token$"),
        "zoho.oauth",
        lambda s, m, q, u, r: oauth_token(s, q),
    ),
    (
        "POST",
        re.compile(r"^/api/v1\.1/workflow/([^/]+)/action/trigger$"),
        "zoho_campaigns.workflow_trigger",
        lambda s, m, q, u, r: trigger(
            s, s.config.workflows, m.group(1), q, u, "1.1", "custom workflow"
        ),
    ),
    (
        "POST",
        re.compile(r"^/api/v1/journeys/([^/]+)/action/trigger$"),
        "zoho_marketing_automation.journey_trigger",
        lambda s, m, q, u, r: trigger(s, s.config.journeys, m.group(1), q, u, "1", "journey"),
    ),
    (
        "POST|GET",
        re.compile(r"^/api/v1\.1/getcampaignrecipientsdata$"),
        "zoho_campaigns.recipients",
        lambda s, m, q, u, r: recipients(s, q, u),
    ),
]
# Calls that carry "Authorization: Zoho-oauthtoken <access token>"
BEARER_APIS = {api for _, _, api, _ in ROUTES} - {"zoho.oauth"}
TOKEN_SCHEME = "Zoho-oauthtoken"  # noqa: S105 - the header scheme, not a token
# (calls, window s, lock s): "API limits" on the trigger pages (500 / 100 calls per 5 minutes,
# then 30 minutes locked) and on the recipients data page
LIMITS = {
    "zoho_campaigns.workflow_trigger": (500, 300.0, 1800.0),
    "zoho_marketing_automation.journey_trigger": (100, 300.0, 1800.0),
    "zoho_campaigns.recipients": (500, 300.0, 1800.0),
}


def learn(config: SimConfig, action: str, params: dict[str, Any]) -> None:
    """Know the workflow or journey, and its list, that a route triggers."""
    flows = config.workflows if "workflow_key" in params else config.journeys
    key = params.get("workflow_key") or params.get("journey_key")
    flows.setdefault(key, Flow(params["trigger_key"], params["list_key"]))
    config.lists.setdefault(params["list_key"], MailingList(f"list {params['list_key'][:6]}"))


def invalid_token(uri: str, query: dict[str, str]) -> Answer:
    return error("INVALID_TOKEN", "invalid oauth token", uri, query.get("resfmt", "JSON"))


def locked(uri: str, query: dict[str, str]) -> Answer:
    fmt = query.get("resfmt", "JSON")
    return error(LOCK_CODE, "Calls limit exceeded. Try again after the lock period.", uri, fmt)
