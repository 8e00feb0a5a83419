"""Messages on the ingest queue: their attributes of every type, the relay's own bookkeeping,
and a writer that stays inside SQS's documented limits.

A record that goes back on the queue (deferred, redriven, or parked by a direct invocation) must
come back as *the same event*: the delivery ledger keys on its identity, and a copy that looked
new would trigger the vendor again. So the relay carries a ``Handling`` with every re-enqueued
message: the event's identity, how often it was deferred, and when it was first seen. It travels
in one message attribute (``trigger_relay``); when the producer already used all ten attributes
SQS allows, in an envelope around the body instead. Either way the pipeline sees the producer's
body and attributes unchanged.

Records deferred together (the records of one call held for a fuller one, or waiting for the
same slot) travel as one *bundle* message, so that they come back to one invocation: SQS spreads
single messages across the event source mapping's concurrent pollers, and a group of 200 came
back as five calls of 40. A bundle carries each member's body, attributes and Handling; the
trigger function unpacks it into its records.

SQS limits (Amazon SQS Developer Guide, "Amazon SQS message quotas",
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html,
and the SendMessageBatch API reference,
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html):

* at most 10 messages in one batch;
* a message, and the sum of all messages in a batch, at most 1 MiB (1,048,576 bytes), where a
  message's size is its body plus each attribute's name, data type and value;
* at most 10 message attributes on a message;
* a delay of 0 to 900 seconds;
* batch entry ids of up to 80 characters: letters, digits, hyphens and underscores.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

MAX_BATCH_ENTRIES = 10
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_BATCH_BYTES = 1024 * 1024
MAX_ATTRIBUTES = 10
MAX_DELAY_SECONDS = 900

HANDLING_ATTRIBUTE = "trigger_relay"
ENVELOPE_KEY = "trigger_relay_envelope"
BUNDLE_KEY = "trigger_relay_bundle"
MAX_TICKETS = 8  # booked slots one record carries back, at most (one per call of it)
BUNDLE_HEADROOM = 2048  # bytes kept free in a bundle for its own attribute and framing


@dataclass(frozen=True, slots=True)
class Attribute:
    """One SQS message attribute: String, Number or Binary (optionally with a custom label)."""

    data_type: str
    string_value: str | None = None
    binary_value: bytes | None = None

    @property
    def text(self) -> str | None:
        """The value as routes match it: String and Number attributes; Binary has none."""
        return None if self.data_type.startswith("Binary") else self.string_value

    def size(self, name: str) -> int:
        value = (
            self.binary_value
            if self.binary_value is not None
            else (self.string_value or "").encode("utf-8", "surrogatepass")
        )
        return len(name.encode()) + len(self.data_type.encode()) + len(value)

    def to_sqs(self) -> MessageAttributeValueTypeDef:
        """The shape SendMessage takes."""
        if self.data_type.startswith("Binary"):
            return {"DataType": self.data_type, "BinaryValue": self.binary_value or b""}
        return {"DataType": self.data_type, "StringValue": self.string_value or ""}

    def to_json(self) -> dict[str, str]:
        """For the rejected store and the envelope: binary values in base64."""
        if self.data_type.startswith("Binary"):
            return {
                "data_type": self.data_type,
                "binary_value": base64.b64encode(self.binary_value or b"").decode(),
            }
        return {"data_type": self.data_type, "string_value": self.string_value or ""}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | str) -> Attribute:
        if isinstance(value, str):  # stored before attributes kept their data types
            return cls("String", value)
        if "binary_value" in value:
            return cls(
                str(value["data_type"]), binary_value=base64.b64decode(value["binary_value"])
            )
        return cls(str(value.get("data_type", "String")), str(value.get("string_value", "")))

    @classmethod
    def from_lambda(cls, value: Mapping[str, Any]) -> Attribute:
        """From a Lambda SQS event record's ``messageAttributes`` entry (binary in base64)."""
        data_type = str(value.get("dataType") or "String")
        if data_type.startswith("Binary"):
            raw = value.get("binaryValue") or ""
            try:
                data = base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
            except (binascii.Error, ValueError):
                data = str(raw).encode()
            return cls(data_type, binary_value=data)
        return cls(data_type, str(value.get("stringValue") or ""))

    @classmethod
    def from_sqs(cls, value: Mapping[str, Any]) -> Attribute:
        """From a ReceiveMessage answer's ``MessageAttributes`` entry (binary as bytes)."""
        data_type = str(value.get("DataType") or "String")
        if data_type.startswith("Binary"):
            return cls(data_type, binary_value=bytes(value.get("BinaryValue") or b""))
        return cls(data_type, str(value.get("StringValue") or ""))


@dataclass(frozen=True, slots=True)
class Handling:
    """What the relay carries with a record from hop to hop."""

    event_id: str | None = None  # the identity the ledger knew the event by
    deferrals: int = 0  # how often it was deferred so far
    first_seen: float | None = None  # epoch seconds it first reached the relay
    # The routes still to settle: the others were delivered (or are uncertain) already. Kept
    # with the record so that a copy handled after the ledger forgot it (an operator's redrive
    # a day later) does not repeat them. None: every route the event matches.
    routes: tuple[str, ...] | None = None
    # Quota slots booked for this record's calls, signed (stores/tickets.py); checked on use.
    tickets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            k: v
            for k, v in (("id", self.event_id), ("n", self.deferrals), ("t0", self.first_seen))
            if v
        }
        if self.routes is not None:
            document["r"] = list(self.routes)
        if self.tickets:
            document["tk"] = list(self.tickets)
        return document

    @classmethod
    def from_json(cls, value: object) -> Handling:
        if not isinstance(value, dict):
            return cls()
        event_id = value.get("id")
        first_seen = value.get("t0")
        deferrals = value.get("n", 0)
        routes = value.get("r")
        tickets = value.get("tk")
        return cls(
            str(event_id) if event_id else None,
            deferrals if isinstance(deferrals, int) and deferrals >= 0 else 0,
            float(first_seen)
            if isinstance(first_seen, int | float) and math.isfinite(first_seen)
            else None,
            tuple(str(r) for r in routes) if isinstance(routes, list) else None,
            tuple(str(t) for t in tickets[:MAX_TICKETS]) if isinstance(tickets, list) else (),
        )


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message as the relay reads it back: the producer's body and attributes, and ours."""

    body: str
    attributes: dict[str, Attribute] = field(default_factory=dict)
    handling: Handling = field(default_factory=Handling)


def unwrap(body: str, attributes: Mapping[str, Attribute]) -> QueuedMessage:
    """Take the relay's Handling out of a message, wherever it travelled."""
    producer = {k: v for k, v in attributes.items() if k != HANDLING_ATTRIBUTE}
    carried = attributes.get(HANDLING_ATTRIBUTE)
    if carried is not None and carried.string_value:
        try:
            return QueuedMessage(
                body, producer, Handling.from_json(json.loads(carried.string_value))
            )
        except ValueError:
            return QueuedMessage(body, producer)
    if body.startswith('{"' + ENVELOPE_KEY):
        try:
            return _carried(json.loads(body)[ENVELOPE_KEY])
        except (ValueError, KeyError, TypeError):
            pass  # not ours after all: the producer's own body
    return QueuedMessage(body, producer)


def _carried(document: Mapping[str, Any]) -> QueuedMessage:
    """A message the relay wrapped (an envelope, a bundle's member): body, attributes, Handling."""
    return QueuedMessage(
        str(document["body"]),
        {k: Attribute.from_json(v) for k, v in document.get("attributes", {}).items()},
        Handling.from_json(document.get("handling")),
    )


def unbundle(body: str) -> list[QueuedMessage] | None:
    """The members of a bundle message, or None when the body is not one."""
    if not body.startswith('{"' + BUNDLE_KEY):
        return None
    try:
        document = json.loads(body)
        members = document[BUNDLE_KEY]
        if (
            len(document) != 1
            or not isinstance(members, list)
            or not members
            or not all(isinstance(m, dict) and isinstance(m.get("body"), str) for m in members)
        ):
            return None  # a producer's body that merely starts like a bundle
        return [_carried(m) for m in members]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not ours after all: the producer's own body


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send, with the relay's Handling; ``delay_seconds`` is clamped to SQS's."""

    body: str
    attributes: dict[str, Attribute] = field(default_factory=dict)
    handling: Handling = field(default_factory=Handling)
    delay_seconds: float = 0

    def wire(self) -> tuple[str, dict[str, Attribute]]:
        """Body and attributes as sent: Handling in its attribute, or in an envelope when the
        producer used every attribute SQS allows."""
        attributes = {k: v for k, v in self.attributes.items() if k != HANDLING_ATTRIBUTE}
        handling = json.dumps(self.handling.to_json(), separators=(",", ":"))
        if len(attributes) < MAX_ATTRIBUTES:
            return self.body, {**attributes, HANDLING_ATTRIBUTE: Attribute("String", handling)}
        return '{"' + ENVELOPE_KEY + '":' + self._carried(attributes) + "}", {}

    def member(self) -> str:
        """This message as a member of a bundle, in JSON."""
        return self._carried(self.attributes)

    def _carried(self, attributes: Mapping[str, Attribute]) -> str:
        """Body, attributes and Handling in one JSON document: an envelope's, a member's."""
        document = {
            "handling": self.handling.to_json(),
            "attributes": {k: v.to_json() for k, v in attributes.items()},
            "body": self.body,
        }
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def bundles(
        cls, messages: list[Outgoing], max_bytes: int = MAX_MESSAGE_BYTES
    ) -> list[tuple[Outgoing, list[int]]]:
        """The messages packed, in order, into as few bundles as fit in ``max_bytes`` each, with
        the indexes each carries; a message alone stays as it is. They share one delay (the
        longest)."""
        packed: list[tuple[Outgoing, list[int]]] = []
        group: list[tuple[int, str]] = []
        size = 0
        limit = max_bytes - BUNDLE_HEADROOM

        def close() -> None:
            if len(group) == 1:
                index = group[0][0]
                packed.append((messages[index], [index]))
            elif group:
                body = '{"' + BUNDLE_KEY + '":[' + ",".join(m for _, m in group) + "]}"
                delay = max(messages[i].delay_seconds for i, _ in group)
                packed.append((cls(body, delay_seconds=delay), [i for i, _ in group]))

        for index, message in enumerate(messages):
            member = message.member()
            member_size = len(member.encode("utf-8", "surrogatepass")) + 1
            if group and size + member_size > limit:
                close()
                group, size = [], 0
            group.append((index, member))
            size += member_size
        close()
        return packed

    def entry(self, entry_id: str) -> tuple[SendMessageBatchRequestEntryTypeDef, int]:
        """The SendMessageBatch entry, and its size as SQS counts it."""
        body, attributes = self.wire()
        size = len(body.encode("utf-8", "surrogatepass")) + sum(
            a.size(n) for n, a in attributes.items()
        )
        entry: SendMessageBatchRequestEntryTypeDef = {
            "Id": entry_id,
            "MessageBody": body,
            "DelaySeconds": min(MAX_DELAY_SECONDS, max(0, math.ceil(self.delay_seconds))),
        }
        if attributes:
            entry["MessageAttributes"] = {n: a.to_sqs() for n, a in attributes.items()}
        return entry, size


class QueueWriter:
    """Sends messages to one queue in as few SendMessageBatch requests as SQS's limits allow,
    and says which could not be sent, and why, message by message."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._max_message = max_message_bytes
        self._max_batch = max_batch_bytes
        self.requests = 0

    def send(self, messages: list[Outgoing]) -> dict[int, str]:
        """Send every message; returns {index in messages: reason} for those not sent."""
        failed: dict[int, str] = {}
        batch: list[tuple[int, SendMessageBatchRequestEntryTypeDef]] = []
        batch_bytes = 0
        for index, message in enumerate(messages):
            entry, size = message.entry(str(index))
            if size > self._max_message:
                failed[index] = f"message of {size} bytes is over SQS's {self._max_message}"
                continue
            if batch and (len(batch) == MAX_BATCH_ENTRIES or batch_bytes + size > self._max_batch):
                failed.update(self._send_batch(batch))
                batch, batch_bytes = [], 0
            batch.append((index, entry))
            batch_bytes += size
        if batch:
            failed.update(self._send_batch(batch))
        return failed

    def _send_batch(
        self, batch: list[tuple[int, SendMessageBatchRequestEntryTypeDef]]
    ) -> dict[int, str]:
        self.requests += 1
        try:
            answer = self._client.send_message_batch(
                QueueUrl=self._queue_url, Entries=[entry for _, entry in batch]
            )
        except Exception as exc:  # every message of the batch is reported failed
            reason = f"SendMessageBatch failed: {type(exc).__name__}"
            return {index: reason for index, _ in batch}
        return {
            int(f["Id"]): f"SQS refused: {f.get('Code', '?')} {f.get('Message', '')}".strip()
            for f in answer.get("Failed", [])
        }
