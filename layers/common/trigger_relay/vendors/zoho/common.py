"""What the Zoho APIs share: data-centre hosts, the OAuth header, and reading a Zoho answer.

Zoho answers errors with HTTP 200 and a ``code`` in the body, so the body is the truth.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from trigger_relay.vendors.outcomes import CallResult, Outcome, http_failure, unreadable

# Data centre -> domain. The API host and the accounts (OAuth) host follow the data centre.
DATA_CENTRES: dict[str, str] = {
    "com": "zoho.com",
    "eu": "zoho.eu",
    "in": "zoho.in",
    "com.au": "zoho.com.au",
    "jp": "zoho.jp",
    "com.cn": "zoho.com.cn",
    "ca": "zohocloud.ca",
    "sa": "zoho.sa",
}


def service_url(service: str, data_centre: str, base_url: str | None = None) -> str:
    """``https://campaigns.zoho.eu`` for ("campaigns", "eu"); a base_url overrides it."""
    if base_url:
        return base_url.rstrip("/")
    return f"https://{service}.{DATA_CENTRES[data_centre]}"


def auth_headers(access_token: str) -> dict[str, str]:
    return {
        "Authorization": f"Zoho-oauthtoken {access_token}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def compact_json(value: Any) -> str:
    """JSON as Zoho's samples write it: no spaces, keys in the given order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ZohoCodes:
    """How Zoho's body codes are classified. Accounts may add lock codes in the routes file."""

    permanent: frozenset[str] = frozenset({"9007", "9002", "9006", "9004", "400"})
    lock: frozenset[str] = frozenset({"2008"})
    token: frozenset[str] = frozenset({"1007", "INVALID_TOKEN", "INVALID_OAUTHTOKEN"})
    success: frozenset[str] = frozenset({"200", "0"})

    def with_lock_codes(self, extra: Iterable[str]) -> ZohoCodes:
        return replace(self, lock=self.lock | {str(c) for c in extra})


DEFAULT_CODES = ZohoCodes()


def read_body(response: httpx.Response, keys: list[str]) -> dict[str, Any] | CallResult:
    """The JSON body of a Zoho answer, or the CallResult that its status or shape decides."""
    failure = http_failure(response, keys)
    if failure is not None:
        return failure
    if response.status_code == 401:
        return _token_invalid(keys, "HTTP 401", "401")
    try:
        body = response.json()
    except ValueError:
        return unreadable(response, keys, "answer is not JSON")
    if not isinstance(body, dict):
        return unreadable(response, keys, "answer is not a JSON object")
    return body


def _token_invalid(keys: list[str], detail: str, code: str) -> CallResult:
    retry = CallResult.same_for_all(keys, Outcome.RETRY, detail)
    return CallResult(retry.by_recipient, vendor_code=code, token_invalid=True)


def error_result(body: dict[str, Any], keys: list[str], codes: ZohoCodes) -> CallResult | None:
    """The CallResult of an error answer, or None when the body reports success."""
    code = str(body.get("code", ""))
    if code in codes.success and str(body.get("status", "success")).lower() == "success":
        return None
    detail = f"Zoho {code}: {body.get('message') or body.get('status') or 'error'}"
    if code in codes.lock:
        return CallResult.same_for_all(keys, Outcome.LOCKED, detail, code=code)
    if code in codes.token:
        return _token_invalid(keys, detail, code)
    if code in codes.permanent:
        return CallResult.same_for_all(keys, Outcome.REJECTED, detail, code=code)
    # An unknown code: retried, and after the queue's receive limit it lands in the DLQ.
    return CallResult.same_for_all(keys, Outcome.RETRY, detail, code=code)
