"""`trigger-relay explain`: the routes an event fires and the exact vendor requests. No network."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from trigger_relay.events import BadEvent, from_eventbridge, from_sqs_body, is_eventbridge
from trigger_relay.planning import Delivery, plan_calls
from trigger_relay.routes import BadRecipient, RoutesFile

MASK = "****"


def source_prefix_default() -> str:
    """The ingest rule's EventSourcePrefix as template.yaml sets it by default."""
    from .template import load_template

    return str(load_template()["Parameters"]["EventSourcePrefix"]["Default"])


def not_relayed(payload: dict[str, Any], prefix: str) -> str | None:
    """Why the stack's ingest rule drops this EventBridge event, or None when it passes. The
    rule's pattern is ``{"source": [{"prefix": EventSourcePrefix}]}`` (template.yaml); an event
    no rule matches is dropped by EventBridge without a trace."""
    source = str(payload.get("source", ""))
    if source.startswith(prefix):
        return None
    return (
        f"NOT RELAYED - the ingest rule passes only sources starting with {prefix!r} "
        f"(EventSourcePrefix); this event's source is {source!r}. Send it with such a source, "
        "or deploy with another EventSourcePrefix"
    )


def records_of(document: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(record id, body, attributes) for an SQS event, an EventBridge event, or a bare app event."""
    if "Records" in document:
        return [
            (
                r.get("messageId", f"record-{i}"),
                r.get("body", ""),
                {
                    k: v.get("stringValue", "")
                    for k, v in (r.get("messageAttributes") or {}).items()
                },
            )
            for i, r in enumerate(document["Records"])
        ]
    return [(str(document.get("id", "event")), json.dumps(document), {})]


def explain(
    document: dict[str, Any], routes: RoutesFile, source_prefix: str | None = None
) -> list[str]:
    prefix = source_prefix_default() if source_prefix is None else source_prefix
    lines: list[str] = []
    deliveries: list[Delivery] = []
    for record_id, body, attributes in records_of(document):
        try:
            payload = json.loads(body)
            if isinstance(payload, dict) and is_eventbridge(payload):
                dropped = not_relayed(payload, prefix)
                if dropped is not None:
                    lines.append(f"record {record_id}: {dropped}")
                    continue
                event = from_eventbridge(payload)
            else:
                event = from_sqs_body(body, record_id, attributes)
        except (BadEvent, ValueError) as exc:
            lines.append(f"record {record_id}: REJECTED - {exc}")
            continue
        lines.append(
            f"record {record_id}: event {event.event_id!r} type {event.type!r} "
            f"source {event.source!r}"
        )
        for route in routes.routes:
            why = route.match.why_not(event)
            if why is not None:
                lines.append(f"  - {route.name}: no match ({why})")
                continue
            try:
                recipient = route.recipient(event)
            except BadRecipient as exc:
                lines.append(f"  x {route.name}: matches, but REJECTED - {exc}")
                continue
            lines.append(f"  + {route.name}: {route.action} -> {recipient.key}")
            deliveries.append(Delivery(record_id, event.event_id, route, recipient))
    calls = plan_calls(deliveries)
    lines.append(f"\n{len(calls)} vendor call(s) would be made:")
    for call in calls:
        account = routes.accounts[call.account]
        api = call.route.api
        base = api.base_url(account.data_centre, account.base_url) or ""
        request = api.build(call.recipients, call.route.typed_params, token=MASK, base_url=base)
        lines.append(f"\n{request.method} {unquote(str(request.url))}")
        for name, value in request.headers.items():
            if name.lower() in ("authorization", "content-type"):
                shown = f"Zoho-oauthtoken {MASK}" if name.lower() == "authorization" else value
                lines.append(f"{name}: {shown}")
        if request.content:
            lines.append(request.content.decode("utf-8", "replace"))
    return lines
