"""Where moto's server differs from AWS in ways the local stack can't live with, and the fixes.

1. DynamoDB: moto handles requests on threads without a lock, so two conditional UpdateItem
   calls can both read the old item and both succeed. DynamoDB never allows that, and the
   quota's guarantee across concurrent Lambdas depends on it. DynamoDB requests are applied
   one at a time (they are short).
2. SQS: ReceiveMessage recomputes every queue attribute (each a pass over all messages) for
   every message it returns, and reads the clock through datetime arithmetic, so receiving from
   a queue of thousands of messages takes seconds and the poller's batches stay small. The
   retention check reads the one attribute it needs, and the clock is read once per call.

Behaviour is otherwise unchanged. Applied once per process by ``apply()``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_APPLIED = False
_DYNAMODB_LOCK = threading.Lock()


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    _serialise_dynamodb()
    _fast_sqs_receive()
    _APPLIED = True


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

    models.unix_time = unix_time  # type: ignore[assignment]
    models.unix_time_millis = unix_time_millis  # type: ignore[assignment]
    models.SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]
