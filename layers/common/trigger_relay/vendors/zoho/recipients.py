"""Zoho Campaigns "get campaign recipients data": JSON or XML, paged.
(zoho.com/campaigns/help/developers/campaign-recipient-data.html)

POST /api/v1.1/getcampaignrecipientsdata?resfmt=JSON&campaignkey=..&action=..&fromindex=1&range=200
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import httpx

from trigger_relay.vendors.safe_xml import UnsafeXml, parse_xml
from trigger_relay.vendors.zoho.common import DEFAULT_CODES, auth_headers

Action = Literal[
    "sentcontacts",
    "openedcontacts",
    "optoutcontacts",
    "spamcontacts",
    "unopenedcontacts",
    "clickedcontacts",
    "senthardbounce",
    "sentsoftbounce",
    "unsentcontacts",
]
ACTIONS: tuple[Action, ...] = get_args(Action)
PATH = "/api/v1.1/getcampaignrecipientsdata"
QUOTA_API = "zoho_campaigns.recipients"
VENDOR_NAME = "zoho"  # the routes file's vendor of a recipients_sync account
# Codes that end a campaign's run with a logged reason (no recipients to read, or no access).
FINAL_CODES = {
    "6601": "AB campaign cannot be sent to less than 4 recipients",
    "6607": "insufficient privileges",
    "6303": "no contacts in the selected mailing list",
    "6002": "invalid campaign key, or campaign not yet sent",
}
# XML field names as JSON names, so both formats give the same rows.
_XML_TO_JSON = {
    "contact_email": "contactemailaddress",
    "first_name": "firstname",
    "last_name": "lastname",
    "company_name": "companyname",
    "added_time": "sentdate",
}

Format = Literal["json", "xml"]


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    from_index: int
    page_size: int

    @property
    def last(self) -> bool:
        return len(self.rows) < self.page_size


@dataclass(frozen=True, slots=True)
class PageError:
    code: str
    reason: str
    final: bool  # True: stop this campaign's run; False: transient, try next run
    locked: bool = False  # the vendor locked this API: stop every campaign until it ends


def build(
    campaign_key: str,
    action: str,
    from_index: int,
    page_size: int,
    *,
    token: str,
    base_url: str,
    fmt: Format = "json",
) -> httpx.Request:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return httpx.Request(
        "POST",
        base_url.rstrip("/") + PATH,
        params={
            "resfmt": fmt.upper(),
            "campaignkey": campaign_key,
            "action": action,
            "fromindex": str(from_index),
            "range": str(page_size),
        },
        headers=auth_headers(token),
    )


def parse(
    response: httpx.Response,
    from_index: int,
    page_size: int,
    fmt: Format = "json",
    lock_codes: frozenset[str] = DEFAULT_CODES.lock,
) -> Page | PageError:
    if response.status_code >= 500 or response.status_code == 429:
        return PageError(str(response.status_code), f"HTTP {response.status_code}", final=False)
    try:
        code, status, rows, message = (_json if fmt == "json" else _xml)(response)
    except (ValueError, UnsafeXml) as exc:
        return PageError("parse", f"unreadable answer: {exc}", final=False)
    if code in FINAL_CODES:
        return PageError(code, FINAL_CODES[code], final=True)
    if code in lock_codes:
        return PageError(code, "calls limit exceeded: API locked", final=False, locked=True)
    if code not in {"0", "200"} or status != "success":
        return PageError(code or "?", message or status or "error", final=False)
    return Page(rows, from_index, page_size)


def _json(response: httpx.Response) -> tuple[str, str, list[dict[str, Any]], str]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("answer is not a JSON object")
    rows = body.get("list_of_details") or []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("list_of_details is not a list of objects")
    return (
        str(body.get("code", "")),
        str(body.get("status", "")),
        rows,
        str(body.get("message", "")),
    )


def _xml(response: httpx.Response) -> tuple[str, str, list[dict[str, Any]], str]:
    root = parse_xml(response.content)
    rows = []
    for contact in root.iter("contact"):
        row: dict[str, Any] = {}
        for fl in contact.findall("fl"):
            name = fl.get("val", "")
            row[_XML_TO_JSON.get(name, name)] = fl.text
        rows.append(row)
    return (
        (root.findtext("code") or "").strip(),
        (root.findtext("status") or "").strip(),
        rows,
        (root.findtext("message") or "").strip(),
    )
