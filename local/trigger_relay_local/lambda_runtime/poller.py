"""SqsPoller: what Lambda's SQS event source mapping does, for one concurrent execution.

It gathers up to BatchSize messages, waiting at most MaximumBatchingWindowInSeconds after the
first; invokes the handler with the event Lambda would send; deletes what succeeded and leaves
the batch item failures to come back after their visibility timeout (moto moves them to the DLQ
after maxReceiveCount receives, as SQS does).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from trigger_relay_local.lambda_runtime.runtime import LocalContext

MAX_RECEIVE = 10  # SQS gives at most ten messages per ReceiveMessage
logger = logging.getLogger(__name__)


@dataclass
class PollerStats:
    invocations: int = 0
    records: int = 0
    deleted: int = 0
    failed: int = 0
    errors: int = 0
    max_batch: int = 0
    # Lambda bills each invocation's duration, rounded up to the millisecond, times the memory
    # configured (GB-seconds): https://aws.amazon.com/lambda/pricing/
    billed_ms: int = 0
    billed_mb_ms: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SqsPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Callable[[dict[str, Any], Any], Any],
        *,
        function_name: str,
        timeout: int,
        memory: int,
        batch_size: int,
        batching_window: float,
        retry_visibility: int | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
        self._function_name = function_name
        self._timeout = timeout
        self._memory = memory
        self._batch_size = batch_size
        self._window = batching_window
        self._retry_visibility = retry_visibility
        self.stats = PollerStats()

    def poll_once(self) -> int:
        """Gather one batch and invoke the handler with it; returns how many records it had."""
        messages = self._gather()
        if messages:
            self._invoke(messages)
        return len(messages)

    def _gather(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        first_at: float | None = None
        while len(messages) < self._batch_size:
            waited = 0.0 if first_at is None else time.monotonic() - first_at
            wait = 1 if first_at is None else max(0, min(1, int(self._window - waited)))
            answer = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(MAX_RECEIVE, self._batch_size - len(messages)),
                WaitTimeSeconds=wait,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            if batch and first_at is None:
                first_at = time.monotonic()
            messages.extend(batch)
            if first_at is None:
                return messages  # nothing waiting
            if time.monotonic() - first_at >= self._window or (not batch and wait == 0):
                break
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(m) for m in messages]}
        context = LocalContext(self._function_name, self._timeout, self._memory)
        self.stats.invocations += 1
        self.stats.records += len(messages)
        self.stats.max_batch = max(self.stats.max_batch, len(messages))
        started = time.perf_counter()
        try:
            response = self._handler(event, context) or {}
            failed_ids = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:  # the whole invocation failed: every message comes back
            # Lambda writes a failed invocation's error and stack trace to the function's log
            logger.exception(
                "invocation failed; its %d message(s) come back after the visibility timeout",
                len(messages),
            )
            self.stats.errors += 1
            failed_ids = {m["MessageId"] for m in messages}
        billed = math.ceil((time.perf_counter() - started) * 1000)
        self.stats.billed_ms += billed
        self.stats.billed_mb_ms += billed * self._memory
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        failed = [m for m in messages if m["MessageId"] in failed_ids]
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        self.stats.deleted += len(done)
        self.stats.failed += len(failed)
        if failed and self._retry_visibility is not None:
            for start in range(0, len(failed), 10):
                self._sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {
                            "Id": str(i),
                            "ReceiptHandle": m["ReceiptHandle"],
                            "VisibilityTimeout": self._retry_visibility,
                        }
                        for i, m in enumerate(failed[start : start + 10])
                    ],
                )

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return lambda_record(message, self._queue_arn)


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One ReceiveMessage message exactly as Lambda's event source mapping shapes it."""
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            # Lambda's event carries binary attributes in base64, as JSON must
            "binaryValue": base64.b64encode(value["BinaryValue"]).decode()
            if value.get("BinaryValue") is not None
            else None,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }
