"""What the Altcraft APIs share: answers in JSON or XML with ``error`` / ``error_text``."""

from __future__ import annotations

import json
from typing import Any, Literal
from xml.sax.saxutils import escape  # nosec B406 - escapes what we write, parses nothing

import httpx

from trigger_relay.vendors.outcomes import (
    CallResult,
    Outcome,
    RecipientOutcome,
    http_failure,
    unreadable,
)
from trigger_relay.vendors.safe_xml import UnsafeXml, parse_xml

Format = Literal["json", "xml"]
MAX_BODY_BYTES = 10 * 1024 * 1024  # "The request body size is limited by default to 10 Mb"


class AltcraftApi:
    """What the Altcraft APIs share: each counts its own calls, and is reached at the account's
    own host (the routes file's base_url: Altcraft has no fixed public one)."""

    action: str
    # Altcraft documents no deduplication: every accepted call launches the trigger again
    deduplicates: bool = False
    needs_base_url: bool = True

    @property
    def quota_api(self) -> str:
        return self.action

    def base_url(self, data_centre: str, base_url: str | None) -> str | None:
        return base_url


def to_xml(root: str, document: dict[str, Any]) -> bytes:
    """Altcraft's XML: one element per key; a list repeats its element; objects nest."""
    return f"<{root}>{_xml_value_items(document)}</{root}>".encode()


def _xml_value_items(document: dict[str, Any]) -> str:
    parts = []
    for key, value in document.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(f"<{key}>{_xml_value(item)}</{key}>")
    return "".join(parts)


def _xml_value(value: Any) -> str:
    if isinstance(value, dict):
        return _xml_value_items(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape("" if value is None else str(value))


def read_answer(
    response: httpx.Response, keys: list[str], fmt: Format
) -> dict[str, Any] | CallResult:
    """``{"error", "error_text", "result"...}`` from JSON or XML, or the CallResult that failed."""
    failure = http_failure(response, keys)
    if failure is not None:
        return failure
    try:
        if fmt == "xml" or response.headers.get("content-type", "").startswith(
            ("application/xml", "text/xml")
        ):
            root = parse_xml(response.content)
            answer: dict[str, Any] = {
                "error": (root.findtext("error") or "").strip(),
                "error_text": (root.findtext("error_text") or "").strip().strip('"'),
                "error_debug": (root.findtext("error_debug") or "").strip(),
                "result": [
                    {child.tag: (child.text or "") for child in element} or (element.text or "")
                    for element in root.findall("result")
                ],
            }
        else:
            answer = response.json()
            if not isinstance(answer, dict):
                raise ValueError("answer is not a JSON object")
    except (ValueError, UnsafeXml) as exc:
        return unreadable(response, keys, f"unreadable Altcraft answer: {type(exc).__name__}")
    return answer


def error_result(answer: dict[str, Any], keys: list[str], status_code: int) -> CallResult | None:
    """None for success (``error`` 0); otherwise every recipient's outcome."""
    code = str(answer.get("error", "")).strip()
    if code == "0" and status_code < 400:
        return None
    if code == "" and status_code < 400:  # a 2xx that does not say success: maybe a proxy's
        return CallResult.same_for_all(
            keys, Outcome.UNCERTAIN, f"HTTP {status_code} answer does not report success"
        )
    detail = f"Altcraft {code or status_code}: {answer.get('error_text') or 'error'}"
    if answer.get("error_debug"):
        detail += f" ({answer['error_debug']})"
    if (code.isdigit() and 400 <= int(code) < 500) or 400 <= status_code < 500:
        return CallResult.same_for_all(
            keys, Outcome.REJECTED, detail, code=code or str(status_code)
        )
    return CallResult.same_for_all(keys, Outcome.RETRY, detail, code=code or str(status_code))


def json_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")


def launch_result(response: httpx.Response, keys: list[str]) -> CallResult:
    """A single launch's answer (launch v1.1, the v1.0 link): every recipient launched on
    ``error`` 0, otherwise the outcome its status, body or code decides."""
    answer = read_answer(response, keys, "json")
    if isinstance(answer, CallResult):
        return answer
    error = error_result(answer, keys, response.status_code)
    if error is not None:
        return error
    return CallResult(
        {k: RecipientOutcome(Outcome.DELIVERED, "launched") for k in keys}, vendor_code="0"
    )
