"""The operator's commands that act on a stack: send and follow, status, redrive."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from trigger_relay.pipeline.decide import decide
from trigger_relay.pipeline.events import (
    BadEvent,
    event_identity,
    from_sqs_body,
)
from trigger_relay.pipeline.queue_messages import Attribute, Handling, Outgoing, QueueWriter, unwrap
from trigger_relay.pipeline.routes import RoutesFile
from trigger_relay.stores.ledger import DeliveryLedger
from trigger_relay.stores.parking import REJECTED_PREFIX, UNCERTAIN_PREFIX
from trigger_relay_cli.explain import eventbridge_entry, not_relayed, on_bus, records_of, too_large
from trigger_relay_cli.failures import Exit, UserError
from trigger_relay_cli.progress import counting
from trigger_relay_cli.status import format_status, quota_status
from trigger_relay_cli.target import Target

REJECTED = REJECTED_PREFIX
UNCERTAIN = UNCERTAIN_PREFIX
REDRIVEN = "redriven/"


# ---------------------------------------------------------------- send and follow


@dataclass
class Sent:
    event_id: str
    message_id: str | None
    ledger_keys: list[str]  # event#route for every route it should fire
    dropped: str | None = None  # why the ingest rule would drop it: not published
    at: float = field(default_factory=time.time)  # when it was published


def send(target: Target, document: dict[str, Any], routes: RoutesFile | None) -> list[Sent]:
    """Publish the event file's events: SQS records to the queue, EventBridge events to the bus.
    Nothing is published when AWS would refuse one of them for its size; an EventBridge event
    the stack's rule would drop is not published either, and says so."""
    records = records_of(document)
    for record_id, body, attributes in records:
        payload = _json(body)
        problem = too_large(payload, body, attributes, on_bus(document, payload))
        if problem is not None:
            raise UserError(
                f"event {record_id} was not sent: {problem.removeprefix('TOO LARGE - ')}",
                "`trigger-relay explain` checks an event file without sending it.",
            )
    sent = []
    queue = target.outputs["IngestQueueUrl"]
    for _, body, attributes in records:
        payload = _json(body)
        if on_bus(document, payload):
            dropped = _dropped_by_rule(target, payload)
            if dropped is not None:
                sent.append(Sent(str(payload.get("id", "event")), None, [], dropped))
                continue
            answer = target.client("events").put_events(
                Entries=[eventbridge_entry(payload, target.outputs["EventBusName"])]
            )
            entry = answer["Entries"][0]
            if "EventId" not in entry:
                raise UserError(
                    f"EventBridge refused the event: {entry.get('ErrorCode')}: "
                    f"{entry.get('ErrorMessage')}",
                    code=Exit.FAILED,
                )
            message_id = None
            payload = {**payload, "id": entry["EventId"]}
            body = json.dumps(payload)
        else:
            message_id = target.client("sqs").send_message(
                QueueUrl=queue,
                MessageBody=body,
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                },
            )["MessageId"]
        record_id = message_id or payload["id"]
        event_id, keys = expected(body, record_id, attributes, routes)
        sent.append(Sent(event_id, message_id, keys))
    return sent


def _dropped_by_rule(target: Target, payload: dict[str, Any]) -> str | None:
    """Why the target's ingest rule would drop this EventBridge event, asked of EventBridge
    itself (TestEventPattern with the rule's deployed pattern), or None when it passes."""
    events = target.client("events")
    rule_arn = target.outputs["IngestRuleArn"]
    rule = events.describe_rule(
        Name=rule_arn.rsplit("/", 1)[-1], EventBusName=target.outputs["EventBusName"]
    )
    pattern = rule["EventPattern"]
    probe = {
        "id": str(payload.get("id") or "00000000-0000-0000-0000-000000000000"),
        "detail-type": payload.get("detail-type", ""),
        "source": payload.get("source", ""),
        "account": payload.get("account") or "123456789012",
        "time": payload.get("time") or "2026-01-01T00:00:00Z",
        "region": payload.get("region") or "eu-west-1",
        "resources": payload.get("resources") or [],
        "detail": payload.get("detail", {}),
    }
    if events.test_event_pattern(EventPattern=pattern, Event=json.dumps(probe))["Result"]:
        return None
    prefixes = [p["prefix"] for p in json.loads(pattern).get("source", []) if isinstance(p, dict)]
    return not_relayed(payload, prefixes[0] if prefixes else "") or (
        f"NOT RELAYED - the ingest rule's pattern {pattern} does not match this event"
    )


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # the function rejects it; decide() says why
        return None


def expected(
    body: str, record_id: str, attributes: dict[str, str], routes: RoutesFile | None
) -> tuple[str, list[str]]:
    """The event's id as the function will read the queued body (an EventBridge event's, an app
    event's `id` / `idempotency_key`, else the SQS message id), and the ledger keys its delivery
    will write: one per route it is handled on. A route whose recipient is refused, or whose
    match cannot be evaluated, ends rejected, so the event is not delivered until that route
    is (the stored row says why). No keys: the event will be rejected, and follow() finds it
    in the rejected store."""
    if routes is None:  # which routes it takes is unknown: its id is what can be followed
        try:
            return from_sqs_body(body, record_id, attributes).event_id, []
        except BadEvent:
            return record_id, []
    decision = decide(routes, record_id, body, attributes)
    if decision.event is None:
        return record_id, []
    event_id = decision.event.event_id
    return event_id, [f"{event_id}#{name}" for name in decision.handled]


def follow(
    target: Target,
    sent: list[Sent],
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int, int, float, float], None] | None = None,
) -> dict[str, str]:
    """Each event's outcome: delivered, uncertain or rejected (with reasons), or still pending at
    the timeout."""
    outcomes: dict[str, str] = {s.event_id: s.dropped for s in sent if s.dropped}
    started = time.monotonic()
    sent_at = min((s.at for s in sent), default=time.time())
    deadline = started + timeout
    while True:
        delivered = _in_ledger(target, [k for s in sent for k in s.ledger_keys])
        stored = {
            label: {
                row["record_id"]: row
                for row in rejected_rows(target, prefix)
                # an earlier send of the same event, stored before this one was sent
                if datetime.fromisoformat(row["rejected_at"]).timestamp() >= sent_at - 1
            }
            for label, prefix in (("uncertain", UNCERTAIN), ("rejected", REJECTED))
        }
        for s in sent:
            if s.dropped:
                continue
            if s.ledger_keys and all(k in delivered for k in s.ledger_keys):
                outcomes[s.event_id] = "delivered"
                continue
            for label, rows in stored.items():
                row = rows.get(s.message_id or "") or next(
                    (r for r in rows.values() if r.get("event_id") == s.event_id), None
                )
                if row is not None:
                    outcomes[s.event_id] = f"{label}: " + "; ".join(row["reasons"])
                    break
        if progress is not None:
            progress(len(outcomes), len(sent), time.monotonic() - started, timeout)
        if len(outcomes) == len(sent) or time.monotonic() > deadline:
            break
        sleep(0.5)
    for s in sent:
        outcomes.setdefault(s.event_id, "pending (queued or deferred for quota)")
    return outcomes


def _in_ledger(target: Target, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    from trigger_relay.stores.ledger import DeliveryLedger

    table = target.outputs["LedgerTableName"]
    return DeliveryLedger(table, target.client("dynamodb")).delivered(keys)


# ---------------------------------------------------------------- rejected and uncertain stores


def rejected_objects(target: Target, prefix: str = REJECTED) -> Iterator[str]:
    s3 = target.client("s3")
    bucket = target.outputs["RecipientsBucketName"]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].startswith(prefix + REDRIVEN):
                yield item["Key"]


def _read_rows(target: Target, key: str) -> list[dict[str, Any]]:
    s3 = target.client("s3")
    body = s3.get_object(Bucket=target.outputs["RecipientsBucketName"], Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines() if line]


def rejected_rows(target: Target, prefix: str = REJECTED) -> list[dict[str, Any]]:
    return [row for key in rejected_objects(target, prefix) for row in _read_rows(target, key)]


# ---------------------------------------------------------------- status


def status_lines(target: Target, routes: RoutesFile | None) -> list[str]:
    sqs = target.client("sqs")
    lines = ["Quota (calls per vendor API, shared by every Lambda)"]
    lines += format_status(
        quota_status(target.client("dynamodb"), target.outputs["QuotaTableName"], routes)
    )
    lines += ["", f"{'QUEUE':<18} {'WAITING':>8} {'IN FLIGHT':>10} {'DELAYED':>8}"]
    for label, output in (
        ("ingest queue", "IngestQueueUrl"),
        ("dead-letter queue", "IngestDeadLetterQueueUrl"),
    ):
        attributes = sqs.get_queue_attributes(
            QueueUrl=target.outputs[output],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        lines.append(
            f"{label:<18} {attributes['ApproximateNumberOfMessages']:>8} "
            f"{attributes['ApproximateNumberOfMessagesNotVisible']:>10} "
            f"{attributes.get('ApproximateNumberOfMessagesDelayed', '0'):>8}"
        )
    lines += ["", f"{'STORE':<18} {'RECORDS':>8}"]
    lines.append(f"{'rejected store':<18} {len(rejected_rows(target)):>8}  under {REJECTED}")
    uncertain = len(rejected_rows(target, UNCERTAIN))
    lines.append(f"{'uncertain store':<18} {uncertain:>8}  under {UNCERTAIN}")
    lines.append("Reasons: `trigger-relay rejected list` (filters: --reason, --route, --since).")
    return lines


# ---------------------------------------------------------------- redrive


def redrive_dlq(target: Target, match: Callable[[str], bool], show: bool = True) -> int:
    """Move DLQ messages (whose body `match`es) back to the ingest queue: send, then delete."""
    sqs = target.client("sqs")
    dlq, queue = target.outputs["IngestDeadLetterQueueUrl"], target.outputs["IngestQueueUrl"]
    total = int(
        sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    moved = seen = 0
    report = counting("DLQ")
    while True:
        messages = sqs.receive_message(
            QueueUrl=dlq,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        chosen = [m for m in messages if match(m["Body"])]
        seen += len(messages)
        if chosen:
            failed = QueueWriter(sqs, queue).send([_as_same_event(m) for m in chosen])
            sent = [m for i, m in enumerate(chosen) if i not in failed]
            if sent:
                sqs.delete_message_batch(
                    QueueUrl=dlq,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(sent)
                    ],
                )
            moved += len(sent)
            if failed:  # they stay in the DLQ; a rerun sends them
                raise RuntimeError(f"{len(failed)} message(s) not sent: {set(failed.values())}")
        if show:
            report(min(seen, total), max(total, seen))
    return moved


def redrive_rejected(
    target: Target,
    reason: str | None,
    route: str | None,
    show: bool = True,
    prefix: str = REJECTED,
) -> int:
    """Send stored records back to the ingest queue, as the same events, then file them under
    <prefix>redriven/.

    Safe to interrupt and run again: an object is moved only after its records were sent, and
    records that reach the vendor twice are stopped by the delivery ledger. From the uncertain
    store (``prefix=UNCERTAIN``) the operator decides on purpose that those pairs may be sent
    again: their ledger entries are dropped first, so the vendor is called once more.
    """
    s3 = target.client("s3")
    bucket = target.outputs["RecipientsBucketName"]
    writer = QueueWriter(target.client("sqs"), target.outputs["IngestQueueUrl"])
    ledger = DeliveryLedger(target.outputs["LedgerTableName"], target.client("dynamodb"))
    keys = list(rejected_objects(target, prefix))
    moved = 0
    report = counting(prefix.rstrip("/"))
    for index, key in enumerate(keys, 1):
        rows = _read_rows(target, key)
        chosen = [r for r in rows if _wanted(r, reason, route)]
        sending = [_redriven_part(r, route) for r in chosen]
        if prefix == UNCERTAIN:  # on purpose: these pairs may reach the vendor again
            ledger.forget(k for part in sending for k in part.get("ledger_keys", []))
        failed = writer.send([_stored_as_same_event(part) for part in sending])
        if failed:
            raise RuntimeError(f"{len(failed)} record(s) not sent back: {set(failed.values())}")
        # what a route filter left of a chosen record stays in the store
        kept = [r for r in rows if r not in chosen]
        kept += [rest for r in chosen if (rest := _remaining_part(r, route)) is not None]
        if chosen:
            s3.put_object(
                Bucket=bucket,
                Key=prefix + REDRIVEN + key[len(prefix) :],
                Body=_gzip_lines(sending),
            )
            if kept:
                s3.put_object(Bucket=bucket, Key=key, Body=_gzip_lines(kept))
            else:
                s3.delete_object(Bucket=bucket, Key=key)
        moved += len(chosen)
        if show:
            report(index, len(keys))
    return moved


def _route_of(reason: str) -> str | None:
    """The route a stored reason is about: "<route>: …" or "route <route>: …"."""
    head = reason.removeprefix("route ").split(":", 1)
    return head[0] if len(head) == 2 and " " not in head[0] else None


def _pending_routes(row: dict[str, Any]) -> list[str] | None:
    """The routes a stored record still had to settle: as stored, or for rows stored before
    that was, the routes its ledger keys or reasons name; None for every route."""
    stored = (row.get("handling") or {}).get("r")
    if stored:  # [] was stored for a record no route took: every route applies
        return list(stored)
    if row.get("ledger_keys"):
        return list(dict.fromkeys(k.rsplit("#", 1)[1] for k in row["ledger_keys"]))
    named = [r for r in map(_route_of, row.get("reasons", [])) if r is not None]
    return list(dict.fromkeys(named)) or None


def _redriven_part(row: dict[str, Any], route: str | None) -> dict[str, Any]:
    """The part of a stored record a redrive sends: every route it still had to settle, or the
    one route asked for."""
    part = dict(row)
    pending = _pending_routes(row)
    part["handling"] = {**row.get("handling", {}), "r": pending}
    if route is None:
        if pending is None:
            del part["handling"]["r"]
        return part
    part["reasons"] = [r for r in row.get("reasons", []) if _route_of(r) == route]
    part["handling"]["r"] = [route]
    if "ledger_keys" in row:
        part["ledger_keys"] = [k for k in row["ledger_keys"] if k.rsplit("#", 1)[1] == route]
    return part


def _remaining_part(row: dict[str, Any], route: str | None) -> dict[str, Any] | None:
    """What stays stored when a redrive took one route of a record, or None."""
    if route is None:
        return None
    pending = [r for r in _pending_routes(row) or [] if r != route]
    if not pending:
        return None
    rest = dict(row)
    rest["reasons"] = [r for r in row.get("reasons", []) if _route_of(r) != route]
    rest["handling"] = {**row.get("handling", {}), "r": pending}
    if "ledger_keys" in row:
        rest["ledger_keys"] = [k for k in row["ledger_keys"] if k.rsplit("#", 1)[1] != route]
    return rest


def _as_same_event(message: dict[str, Any]) -> Outgoing:
    """A DLQ message as the relay first knew it: SQS kept its message id in the DLQ, and the
    copy on the ingest queue carries that identity."""
    attributes = {k: Attribute.from_sqs(v) for k, v in message.get("MessageAttributes", {}).items()}
    queued = unwrap(message["Body"], attributes)
    text = {k: v.text for k, v in queued.attributes.items() if v.text is not None}
    event_id = queued.handling.event_id or event_identity(queued.body, message["MessageId"], text)
    return Outgoing(queued.body, queued.attributes, replace(queued.handling, event_id=event_id))


def _stored_as_same_event(row: dict[str, Any]) -> Outgoing:
    """A stored record, with its attributes, identity and the routes it still had to settle
    (so a delivered route is not repeated, even after the ledger forgot it), as a fresh start:
    its deferral count and age begin again, since an operator sent it back on purpose."""
    attributes = {k: Attribute.from_json(v) for k, v in (row.get("attributes") or {}).items()}
    routes = Handling.from_json(row.get("handling")).routes
    return Outgoing(row["body"], attributes, Handling(row.get("event_id"), routes=routes))


def _wanted(row: dict[str, Any], reason: str | None, route: str | None) -> bool:
    reasons = row.get("reasons", [])
    if reason is not None and not any(reason.lower() in r.lower() for r in reasons):
        return False
    return route is None or route in (_pending_routes(row) or [])


def _gzip_lines(rows: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows))
