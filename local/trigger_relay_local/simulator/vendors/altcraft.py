"""Altcraft as its Bulk trigger launch and Trigger launch pages document it: bulk launch
(JSON/XML, 10 MB cap), launch v1.1, and the v1.0 per-profile link."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from trigger_relay.vendors.safe_xml import UnsafeXml, parse_xml
from trigger_relay_local.simulator.state import Answer, Route, SimConfig, SimState


def account_secret(config: SimConfig) -> dict[str, str]:
    """What an Altcraft account's secret holds on the local stack: the simulator's API token."""
    return {"token": config.altcraft_token}


MAX_BODY_BYTES = 10 * 1024 * 1024
OK_TEXT = "Successful operation"


def profile_id(identifier: str) -> str:
    return hashlib.md5(identifier.lower().encode()).hexdigest()[:24]  # noqa: S324 - a fake id


def _answer(document: dict[str, Any], fmt: str, status: int = 200) -> Answer:
    if fmt == "xml":
        parts = []
        for key, value in document.items():
            for item in value if isinstance(value, list) else [value]:
                inner = (
                    "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in item.items())
                    if isinstance(item, dict)
                    else escape(str(item))
                )
                parts.append(f"<{key}>{inner}</{key}>")
        return status, "application/xml", f"<xml>{''.join(parts)}</xml>".encode()
    return status, "application/json", json.dumps(document).encode()


def _error(code: int, text: str, fmt: str, debug: str | None = None) -> Answer:
    document: dict[str, Any] = {"error": code}
    if debug:
        document["error_debug"] = debug
    document["error_text"] = text
    return _answer(document, fmt)


def _xml_document(body: bytes) -> dict[str, Any]:
    root = parse_xml(body)
    document: dict[str, Any] = {}
    for child in root:
        value: Any = {c.tag: c.text for c in child} if len(child) else child.text
        if child.tag == "data":
            document.setdefault("data", []).append(value)
        else:
            document[child.tag] = value
    return document


def start_batch(state: SimState, body: bytes, content_type: str) -> Answer:
    fmt = "xml" if "xml" in content_type else "json"
    if len(body) > MAX_BODY_BYTES:
        return _error(400, "Invalid request", fmt, "http: request body too large")
    try:
        document = _xml_document(body) if fmt == "xml" else json.loads(body)
    except (ValueError, UnsafeXml):
        return _error(400, "Invalid request", fmt, "malformed body")
    fmt = str(document.get("format") or fmt)
    if document.get("token") != state.config.altcraft_token:
        return _error(403, "Invalid API token", fmt)
    trigger = str(document.get("trigger_id", ""))
    if trigger not in state.config.altcraft_triggers:
        return _error(404, "Trigger campaign not found", fmt)
    matching = document.get("matching", "email")
    field = "email" if matching == "email" else "field_value"
    if matching == "custom" and not document.get("field_name"):
        return _error(400, "field_name is required for custom matching", fmt)
    items = document.get("data") or []
    values = [str(item.get(field)) for item in items if isinstance(item, dict) and item.get(field)]
    if len(values) != len(items):
        return _error(400, f"every data item needs {field}", fmt)
    with state.mutex:
        state.altcraft_launched.extend((trigger, value) for value in values)
    return _answer(
        {
            "error": 0,
            "error_text": OK_TEXT,
            "result": [{"profile_id": profile_id(v)} for v in values],
        },
        fmt,
    )


_SINGLE = {"email": "email", "phone": "phone", "profile_id": "profile_id", "custom": "field_value"}


def start(state: SimState, body: bytes) -> Answer:
    try:
        document = json.loads(body)
    except ValueError:
        return _error(400, "Invalid request", "json", "malformed JSON")
    if document.get("token") != state.config.altcraft_token:
        return _error(403, "Invalid API token", "json")
    trigger = str(document.get("id", ""))
    if trigger not in state.config.altcraft_triggers:
        return _error(404, "Trigger campaign not found", "json")
    if "custom_request" in document:
        query = document["custom_request"]
        if not isinstance(query, dict) or not query:
            return _error(400, "custom_request must be a query object", "json")
        values = [
            str(v) for cond in query.values() if isinstance(cond, dict) for v in cond.get("$in", [])
        ]
    else:
        matching = document.get("matching", "email")
        field = _SINGLE.get(matching)
        if field is None or not document.get(field):
            return _error(400, f"matching {matching} needs {field}", "json")
        if matching == "custom" and not document.get("field_name"):
            return _error(400, "field_name is required for custom matching", "json")
        values = [str(document[field])]
    for attachment in document.get("attach") or []:
        if not str(attachment.get("data", "")).startswith("data:") or not attachment.get("name"):
            return _error(400, "attach needs data URLs and names", "json")
    with state.mutex:
        state.altcraft_launched.extend((trigger, value) for value in values)
    return _answer({"data": None, "error": 0, "error_text": OK_TEXT}, "json")


def invalid_token(uri: str = "", query: dict[str, str] | None = None) -> Answer:
    return _error(403, "Invalid API token", "json")


def link(state: SimState, value: str, identifier: str) -> Answer:
    if value not in state.config.altcraft_links:
        return 404, "text/plain", b"unknown trigger link"
    with state.mutex:
        state.altcraft_launched.append((f"link:{value}", identifier))
    return _answer({"error": 0, "error_text": OK_TEXT}, "json")


ROUTES: list[Route] = [
    (
        "POST",
        re.compile(r"^/api/v1\.1/campaigns/triggers/start_batch/?$"),
        "altcraft.bulk_trigger",
        lambda s, m, q, u, r: start_batch(s, r.body, r.headers.get("Content-Type", "")),
    ),
    (
        "POST",
        re.compile(r"^/api/v1\.1/campaigns/triggers/start/?$"),
        "altcraft.trigger",
        lambda s, m, q, u, r: start(s, r.body),
    ),
    (
        "GET|POST",
        re.compile(r"^/trg/([0-9a-fA-F]+)/([^/]+)$"),
        "altcraft.trigger_link",
        lambda s, m, q, u, r: link(s, m.group(1), unquote(m.group(2))),
    ),
]
BEARER_APIS: set[str] = set()  # the API token travels in the body (or the link is the secret)
TOKEN_SCHEME = ""
LIMITS: dict[str, tuple[int, float, float]] = {}  # Altcraft's pages document no call limit


def learn(config: SimConfig, action: str, params: dict[str, Any]) -> None:
    """Know the trigger campaign, or the v1.0 link, that a route launches."""
    if action == "altcraft.trigger_link":
        config.altcraft_links.add(params["link"].rstrip("/").rsplit("/", 1)[1])
    else:
        config.altcraft_triggers.add(str(params.get("trigger_id", params.get("id"))))


def locked(uri: str, query: dict[str, str]) -> Answer:
    """Altcraft documents no call limit; a limit set on the simulator answers as HTTP 429."""
    return 429, "text/plain", b"Too Many Requests"


def mint_refused() -> Answer:
    return invalid_token()
