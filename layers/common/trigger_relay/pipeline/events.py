"""Inbound app events, whichever way they arrived, in one shape.

An SQS record's body is either an app event sent straight to the queue
(``{"type": "user.signed_up", "user": {...}}``) or an EventBridge event that the ingest rule
delivered there (``{"version": "0", "id": ..., "detail-type": ..., "source": ..., "detail": ...}``).
A Lambda invoked by EventBridge directly gets the latter as its event.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# SQS's own limit (1 MiB, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/
# SQSDeveloperGuide/quotas-messages.html): an EventBridge event of up to 256 KB arrives wrapped
# in its envelope, so the relay takes whatever the queue can hold.
MAX_EVENT_BYTES = 1024 * 1024


class BadEvent(ValueError):
    """The record can never become a valid event; it is rejected with this reason."""


class InboundEvent(BaseModel):
    """An app event as the routes see it."""

    model_config = ConfigDict(frozen=True)

    event_id: str = Field(description="The business id: EventBridge id, producer key, or SQS id")
    type: str | None = Field(description="App event type, or the EventBridge detail-type")
    source: str | None = None
    detail_type: str | None = None
    data: dict[str, Any] = Field(description="What field mappings read: the body or the detail")
    attributes: dict[str, str] = Field(default_factory=dict)


class _AppEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)
    id: str | int | None = None
    idempotency_key: str | int | None = None


class _EventBridgeEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]


def is_eventbridge(payload: dict[str, Any]) -> bool:
    return {"detail-type", "source", "detail"} <= payload.keys()


def from_eventbridge(payload: dict[str, Any]) -> InboundEvent:
    try:
        event = _EventBridgeEvent.model_validate(payload)
    except ValidationError as exc:
        raise BadEvent(f"invalid EventBridge event: {_first_error(exc)}") from exc
    detail_type = event.detail.get("type")
    return InboundEvent(
        event_id=str(event.detail.get("idempotency_key") or event.id),
        type=detail_type if isinstance(detail_type, str) else event.detail_type,
        source=event.source,
        detail_type=event.detail_type,
        data=event.detail,
    )


def from_sqs_body(
    body: str, message_id: str, attributes: dict[str, str], carried_id: str | None = None
) -> InboundEvent:
    """Parse one SQS record body; raises BadEvent with a reason a person can act on.

    ``carried_id`` is the identity the relay gave the event on its first hop, carried with a
    re-enqueued copy (queue_messages.Handling): it wins over everything, so the copy is the
    same event to the ledger even when the first hop named it by its SQS message id.
    """
    if len(body.encode("utf-8", "surrogatepass")) > MAX_EVENT_BYTES:
        raise BadEvent(f"event larger than {MAX_EVENT_BYTES} bytes")
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadEvent(f"body is not JSON: {exc.msg} at char {exc.pos}") from exc
    except (ValueError, RecursionError) as exc:  # an integer of > 4300 digits; nesting too deep
        raise BadEvent(f"body is not JSON the relay can read: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise BadEvent(f"body is a JSON {type(payload).__name__}, not an object")
    if is_eventbridge(payload):
        event = from_eventbridge(payload)
        return event.model_copy(
            update={"attributes": attributes, "event_id": carried_id or event.event_id}
        )
    try:
        app = _AppEvent.model_validate(payload)
    except ValidationError as exc:
        raise BadEvent(f"invalid app event: {_first_error(exc)}") from exc
    return InboundEvent(
        event_id=carried_id
        or _text(app.idempotency_key)
        or _text(app.id)
        or attributes.get("idempotency_key")
        or message_id,
        type=app.type,
        data=payload,
        attributes=attributes,
    )


def _text(value: str | int | None) -> str | None:
    return None if value is None or value == "" else str(value)


def event_identity(body: str, message_id: str, attributes: dict[str, str]) -> str:
    """The identity the pipeline gives a message; its message id when the body is bad."""
    try:
        return from_sqs_body(body, message_id, attributes).event_id
    except BadEvent:
        return message_id


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "event"
    return f"{where}: {error['msg']}"
