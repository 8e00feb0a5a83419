"""Where moto's server differs from AWS in ways the local stack can't live with, and the fixes.

Each patch has a name, and tests/unit/test_moto_patches.py runs its probe
(tests/helpers/moto_probes.py) with the patch and, in a fresh process, without it: every patch
changes what it says it changes. Links are to the moto code each one replaces.

1. ``serialise_dynamodb``: moto handles requests on threads without a lock, so two conditional
   UpdateItem calls can both read the old item and both succeed. DynamoDB never allows that, and
   the quota's guarantee across concurrent Lambdas depends on it. DynamoDB requests are applied
   one at a time (they are short).
   (https://github.com/getmoto/moto/blob/5.2.5/moto/dynamodb/responses.py
   ``DynamoHandler.call_action``)

2. ``fast_sqs_receive``: ReceiveMessage recomputes every queue attribute (each a pass over all
   messages) for every message it returns, and reads the clock through datetime arithmetic, so
   receiving from a queue of thousands of messages takes seconds and the poller's batches stay
   small. The retention check reads the one attribute it needs.
   (https://github.com/getmoto/moto/blob/5.2.5/moto/sqs/models.py
   ``SQSBackend.is_message_valid_based_on_retention_period``)

3. ``linear_sqs_drain`` and ``uncounted_sqs_send``: every receive builds the list of all visible
   messages to return ten, and every delete or visibility change finds its message by scanning
   the queue and rebuilding it, so a backlog of n messages costs O(n^2) to drain: 100,000 events
   took hours. Visible messages are now walked lazily (a receive stops at the messages it
   returns) and receipt handles lead straight to their message, so draining is linear, as on
   AWS. Sending reads ``Queue.attributes`` for one flag, which counts every message three times
   over; a send no longer counts them.
   (https://github.com/getmoto/moto/blob/5.2.5/moto/sqs/models.py ``Queue.messages``,
   ``Queue.delete_message``, ``Queue.attributes``)

4. ``uncopied_put_transactions``: TransactWriteItems deep-copies every table it touches before
   writing, to roll back on failure - each claim transaction of the delivery ledger copied the
   whole ledger. A transaction of conditional puts (the ledger's) now checks every condition
   first and writes only when all pass, which is the same outcome without the copy: DynamoDB
   requests here are applied one at a time (fix 1).
   (https://github.com/getmoto/moto/blob/5.2.5/moto/dynamodb/models/__init__.py
   ``DynamoDBBackend.transact_write_items``)

5. ``strict_sqs_limits``: SQS is *stricter* here than moto, as strict as AWS: moto accepts an
   11th message attribute, measures a message by its body's characters (not bytes, and without
   its attributes), and a batch by its bodies alone. AWS counts bytes, and counts each
   attribute's name, data type and value in the message's size; a message has at most 10
   attributes; a batch's messages together are at most 1 MiB; a body holds only the characters
   XML 1.0 allows (Amazon SQS message quotas,
   https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
   quotas-messages.html; SendMessage and SendMessageBatch in the API reference). Without this a
   test could pass locally that fails on AWS: re-enqueueing used to add an 11th attribute.
   (https://github.com/getmoto/moto/blob/5.2.5/moto/sqs/models.py ``SQSBackend.send_message``)

6. ``event_pattern_test``: moto answers TestEventPattern with an empty body. It now answers as
   AWS does, with ``Result``, matching by moto's own pattern matcher - the one its PutEvents
   routes with, so `trigger-relay send` asks the local rule exactly what the local bus will do -
   and refusing an event without the fields AWS requires (id, account, source, time, region,
   resources, detail-type;
   https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_TestEventPattern.html).
   (https://github.com/getmoto/moto/blob/5.2.5/moto/events/responses.py
   ``EventsHandler.test_event_pattern``)

2, 3 and 4 are about speed, and not only the benchmarks': without them the local event source
mapping gathers smaller batches than Lambda's would. Measured with all four skipped:
tests/integration/test_pipeline_on_stack.py took 3.4x as long (148 s against 43 s) and 1,000
queued signups became 8 Zoho calls where Lambda's batching makes 5. Behaviour is otherwise
unchanged. Applied once per process by ``apply()``.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator
from typing import Any

_APPLIED = False
_DYNAMODB_LOCK = threading.Lock()


# The moto these patches were written against (pyproject pins it): they replace its internals.
MOTO_VERSION = "5.2.5"


def apply(skip: Collection[str] = ()) -> None:
    """Every patch but those named in ``skip`` (a test's way to see moto without one)."""
    global _APPLIED
    if _APPLIED:
        return
    from importlib.metadata import version

    if version("moto") != MOTO_VERSION:
        raise RuntimeError(
            f"moto {version('moto')} is installed; the local stack's patches are written for "
            f"{MOTO_VERSION} (trigger_relay_local/stack/moto_patches.py): install that one "
            "(`make venv`), or upgrade moto and the patches together"
        )
    unknown = set(skip) - PATCHES.keys()
    if unknown:
        raise ValueError(f"no such patch: {sorted(unknown)}")
    for name, patch in PATCHES.items():
        if name not in skip:
            patch()
    _APPLIED = True


_TEST_EVENT_FIELDS = ("id", "account", "source", "time", "region", "resources", "detail-type")


def _event_pattern_test() -> None:
    import json

    from moto.core.exceptions import JsonRESTError
    from moto.events.models import EventPattern
    from moto.events.responses import EventsHandler

    def test_event_pattern(self: Any) -> str:
        event = json.loads(self._get_param("Event"))
        missing = [f for f in _TEST_EVENT_FIELDS if f not in event]
        if missing:
            raise JsonRESTError(
                "ValidationException", f"Parameter Event is not valid: missing {missing}"
            )
        pattern = EventPattern.load(self._get_param("EventPattern"))
        return json.dumps({"Result": pattern.matches_event(event)})

    EventsHandler.test_event_pattern = test_event_pattern  # type: ignore[method-assign,assignment]


def _serialise_dynamodb() -> None:
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def _fast_sqs_receive() -> None:
    from moto.sqs import models

    original_unix_time = models.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        retention = int(queue.message_retention_period)
        return retention + message.sent_timestamp / 1000 > time.time()

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    models.SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]


class _VisibleMessages:
    """``Queue.messages`` as a lazy view: iterated, counted or tested without building a list."""

    __slots__ = ("_queue",)

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __iter__(self) -> Iterator[Any]:
        # A delete on another thread may shift the list under this walk; a message it skips
        # is only received by a later call, as SQS may do anyway.
        for message in self._queue._messages:
            if message.visible and not message.delayed:
                yield message

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)


def _linear_sqs_drain() -> None:
    from moto.sqs import models
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid

    by_handle: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
    original_mark_received = models.Message.mark_received

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original_mark_received(self, visibility_timeout)
        by_handle[self.receipt_handle] = self

    def held_message(queue: Any, receipt_handle: str) -> Any:
        # Messages compare by identity, so ``in`` is a C scan, and the ones being worked on are
        # near the front of the queue.
        message = by_handle.get(receipt_handle)
        if message is None or message not in queue._messages:
            raise ReceiptHandleIsInvalid()
        return message

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleting twice is allowed
        message = by_handle.get(receipt_handle)
        if message is None:
            raise ReceiptHandleIsInvalid()
        with self._messages_lock:
            try:
                self._messages.remove(message)
            except ValueError:
                raise ReceiptHandleIsInvalid() from None
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)

    def change_message_visibility(
        self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = self.get_queue(queue_name)
        message = held_message(queue, receipt_handle)
        until = time.time() * 1000 + int(visibility_timeout) * 1000
        if until - message.sent_timestamp > 43200 * 1000:
            raise InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: "
                "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]"
            )
        message.change_visibility(visibility_timeout)
        if message.visible and message in queue.pending_messages:
            queue.pending_messages.remove(message)

    models.Message.mark_received = mark_received  # type: ignore[method-assign]
    models.Queue.messages = property(_VisibleMessages)  # type: ignore[assignment,method-assign]
    models.Queue.delete_message = delete_message  # type: ignore[method-assign]
    models.SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]


def _uncounted_sqs_send() -> None:
    from moto.sqs import models

    sending = threading.local()
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        count = getattr(models.Queue, name).fget

        def counted(self: Any, count: Any = count) -> int:
            # a send reads the attributes only for ContentBasedDeduplication
            return 0 if getattr(sending, "active", False) else count(self)

        setattr(models.Queue, name, property(counted))

    original_send = models.SQSBackend.send_message

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        sending.active = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            sending.active = False

    models.SQSBackend.send_message = send_message  # type: ignore[method-assign]


def _uncopied_put_transactions() -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100 or any(set(item) != {"Put"} for item in transact_items):
            return original(self, transact_items)  # moto's own checks and errors
        puts = [item["Put"] for item in transact_items]
        keys = set()
        reasons: list[tuple[Any, Any, Any]] = []
        for put in puts:
            table = self.get_table(put["TableName"])
            key = {table.hash_key_attr: put["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = put["Item"][table.range_key_attr]
            unique = (put["TableName"], repr(sorted(key.items())))
            if unique in keys:
                return original(self, transact_items)  # two puts on one item: moto's error
            keys.add(unique)
            current = self.get_item(put["TableName"], key)
            condition = put.get("ConditionExpression")
            if condition and not get_filter_expression(
                condition, put.get("ExpressionAttributeNames"), put.get("ExpressionAttributeValues")
            ).expr(current):
                old = None
                if put.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
            else:
                reasons.append((None, None, None))
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)
        for put in puts:
            self.put_item(put["TableName"], put["Item"])
        return None

    transact_write_items.__wrapped__ = original  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


SQS_MAX_ATTRIBUTES = 10  # "A message can contain up to 10 metadata attributes."
SQS_MAX_BATCH_BYTES = 1024 * 1024  # the sum of a batch's messages, like one message
# The characters a message may hold (SendMessage: "#x9 | #xA | #xD | #x20 to #xD7FF |
# #xE000 to #xFFFD | #x10000 to #x10FFFF").
_SQS_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sqs_message_bytes(body: str, attributes: dict[str, Any] | None) -> int:
    """A message's size as SQS counts it: UTF-8 body, plus name, type and value of each
    attribute (binary values decoded)."""
    size = len(body.encode("utf-8", "surrogatepass"))
    for name, value in (attributes or {}).items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        if value.get("BinaryValue") is not None:
            raw = value["BinaryValue"]
            size += len(base64.b64decode(raw) if isinstance(raw, str) else raw)
        else:
            size += len(str(value.get("StringValue", "")).encode("utf-8", "surrogatepass"))
    return size


def _strict_sqs_limits() -> None:
    from moto.sqs import models
    from moto.sqs.exceptions import BatchRequestTooLong, InvalidParameterValue

    def check(queue: Any, body: str, attributes: dict[str, Any] | None) -> int:
        if len(attributes or {}) > SQS_MAX_ATTRIBUTES:
            raise InvalidParameterValue(
                f"Number of message attributes [{len(attributes or {})}] exceeds the allowed "
                f"maximum [{SQS_MAX_ATTRIBUTES}]."
            )
        if _SQS_INVALID.search(body):
            raise InvalidParameterValue(
                "Invalid binary character in the message body: only the characters XML allows"
            )
        size = sqs_message_bytes(body, attributes)
        if size > int(queue.maximum_message_size):
            raise InvalidParameterValue(
                "One or more parameters are invalid. Reason: Message must be shorter than "
                f"{queue.maximum_message_size} bytes."
            )
        return size

    original_send = models.SQSBackend.send_message
    original_batch = models.SQSBackend.send_message_batch

    def send_message(
        self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any
    ) -> Any:
        attributes = kwargs.get("message_attributes", args[0] if args else None)
        check(self.get_queue(queue_name), message_body, attributes)
        return original_send(self, queue_name, message_body, *args, **kwargs)

    def send_message_batch(self: Any, queue_name: str, entries: dict[str, Any]) -> Any:
        queue = self.get_queue(queue_name)
        total = sum(
            check(queue, e["MessageBody"], e.get("MessageAttributes")) for e in entries.values()
        )
        if total > SQS_MAX_BATCH_BYTES:
            raise BatchRequestTooLong(total)
        return original_batch(self, queue_name, entries)

    models.SQSBackend.send_message = send_message  # type: ignore[method-assign]
    models.SQSBackend.send_message_batch = send_message_batch  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
    "serialise_dynamodb": _serialise_dynamodb,
    "uncopied_put_transactions": _uncopied_put_transactions,
    "fast_sqs_receive": _fast_sqs_receive,
    "linear_sqs_drain": _linear_sqs_drain,
    "uncounted_sqs_send": _uncounted_sqs_send,
    "strict_sqs_limits": _strict_sqs_limits,
    "event_pattern_test": _event_pattern_test,
}
