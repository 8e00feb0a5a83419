"""`trigger-relay explain`: the routes an event fires and the exact vendor requests. No network."""

from __future__ import annotations

import json
from typing import Any

from trigger_relay.pipeline.decide import decide
from trigger_relay.pipeline.events import is_eventbridge
from trigger_relay.pipeline.planning import Delivery, plan_calls
from trigger_relay.pipeline.queue_messages import MAX_MESSAGE_BYTES, Attribute
from trigger_relay.pipeline.routes import RoutesFile
from trigger_relay_cli.repository import template_default

MASK = "****"


def source_prefix_default() -> str:
    """The ingest rule's EventSourcePrefix as template.yaml sets it by default."""
    return template_default("EventSourcePrefix")


# PutEvents: "The total entry size must be less than 256KB", counted as the Time (14 bytes),
# Source, DetailType, Detail and Resources in UTF-8.
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html
EVENTBRIDGE_ENTRY_BYTES = 256 * 1024
# SQS: a message of up to 1 MiB, its body and every attribute's name, type and value counted.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
SQS_MESSAGE_BYTES = MAX_MESSAGE_BYTES


def eventbridge_entry(payload: dict[str, Any], bus: str | None = None) -> dict[str, Any]:
    """The PutEvents entry `send` makes of an EventBridge event file."""
    entry: dict[str, Any] = {
        "Source": payload["source"],
        "DetailType": payload["detail-type"],
        "Detail": json.dumps(payload["detail"]),
    }
    if payload.get("resources"):
        entry["Resources"] = list(payload["resources"])
    if bus is not None:
        entry["EventBusName"] = bus
    return entry


def on_bus(document: dict[str, Any], payload: Any) -> bool:
    """Whether `send` publishes this record on the bus (a bare EventBridge event file), where
    the ingest rule filters it; the records of an SQS event file go to the queue as they are,
    and the function relays an EventBridge-shaped body whatever its source."""
    return "Records" not in document and isinstance(payload, dict) and is_eventbridge(payload)


def too_large(payload: Any, body: str, attributes: dict[str, str], bus: bool) -> str | None:
    """Why AWS would refuse to take this event, as `send` would publish it, or None."""
    if bus:
        entry = eventbridge_entry(payload)
        size = sum(
            len(str(entry.get(k, "")).encode("utf-8")) for k in ("Source", "DetailType", "Detail")
        ) + sum(len(r.encode("utf-8")) for r in entry.get("Resources", []))
        if size >= EVENTBRIDGE_ENTRY_BYTES:
            return (
                f"TOO LARGE - the EventBridge entry is {size:,} bytes; PutEvents takes less than "
                f"{EVENTBRIDGE_ENTRY_BYTES:,} (256 KB). Put the large part in S3 and send its key"
            )
        return None
    size = len(body.encode("utf-8", "surrogatepass")) + sum(
        Attribute("String", v).size(k) for k, v in attributes.items()
    )
    if size > SQS_MESSAGE_BYTES:
        return (
            f"TOO LARGE - the SQS message is {size:,} bytes with its attributes; SQS takes at "
            f"most {SQS_MESSAGE_BYTES:,} (1 MiB). Put the large part in S3 and send its key"
        )
    return None


def shown(recipient: Any) -> str:
    """The recipient as the request carries it (the ledger's key may be lower-cased)."""
    values = [
        str(v)
        for v in recipient.model_dump(exclude_none=True).values()
        if not isinstance(v, list | dict)
    ]
    return ", ".join(values) or recipient.key


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
            payload: Any = json.loads(body)
        except (ValueError, RecursionError):
            payload = None  # decide() rejects it, with the reason the function stores
        bus = on_bus(document, payload)
        problem = too_large(payload, body, attributes, bus)
        if problem is not None:
            lines.append(f"record {record_id}: {problem}")
            continue
        if bus:
            dropped = not_relayed(payload, prefix)
            if dropped is not None:
                lines.append(f"record {record_id}: {dropped}")
                continue
        decision = decide(routes, record_id, body, attributes)
        event = decision.event
        if event is None:
            lines.append(f"record {record_id}: REJECTED - {'; '.join(decision.rejected)}")
            continue
        source = f" source {event.source!r}" if event.source is not None else ""
        lines.append(f"record {record_id}: event {event.event_id!r} type {event.type!r}{source}")
        for verdict in decision.verdicts:
            name = verdict.route.name
            if verdict.not_matched is not None:
                lines.append(f"  - {name}: no match ({verdict.not_matched})")
            elif verdict.delivery is None:
                lines.append(f"  x {name}: REJECTED - {verdict.rejected}")
            else:
                recipient = shown(verdict.delivery.recipient)
                lines.append(f"  + {name}: {verdict.route.action} -> {recipient}")
        if not decision.handled:
            lines.append(f"  REJECTED - {'; '.join(decision.rejected)}")
        deliveries += decision.deliveries
    calls = plan_calls(deliveries)
    lines.append(
        f"\n{len(calls)} vendor call(s) would be made (the exact requests; secrets as {MASK}):"
    )
    for call in calls:
        account = routes.accounts[call.account]
        api = call.route.api
        base = api.base_url(account.data_centre, account.base_url) or ""
        request = api.build(call.recipients, call.route.typed_params, token=MASK, base_url=base)
        lines.append(f"\n{request.method} {request.url}")
        for name, value in request.headers.items():
            if name.lower() in ("authorization", "content-type"):
                lines.append(f"{name}: {value}")
        if request.content:
            lines.append(request.content.decode("utf-8", "replace"))
    return lines
