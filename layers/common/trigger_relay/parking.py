"""Where records go that are not delivered now: deferred back to the queue, or rejected to S3.

A deferred record is sent to the ingest queue again with a delay (up to SQS's 15 minutes) and
the original is acknowledged, so waiting for quota or a lock never counts towards the DLQ's
receive limit. A rejected record is stored with its reasons and acknowledged: never retried,
never lost. Both raise on failure, and the pipeline then lets SQS deliver the record again.
"""

from __future__ import annotations

import gzip
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_DELAY_SECONDS = 900
DEFERRALS_ATTRIBUTE = "trigger_relay_deferrals"


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    record_id: str
    body: str
    attributes: dict[str, str]
    reasons: list[str]
    retry_at: float | None = None


class Deferrals:
    def __init__(self, queue_url: str, client: Any, clock: Callable[[], float] = time.time) -> None:
        self._queue_url = queue_url
        self._client = client
        self._clock = clock

    def park(self, records: list[ParkedRecord]) -> set[str]:
        """Re-enqueue with a delay; returns the record ids that could not be re-enqueued."""
        failed: set[str] = set()
        now = self._clock()
        for start in range(0, len(records), 10):
            entries = []
            for index, record in enumerate(records[start : start + 10]):
                delay = math.ceil((record.retry_at or now) - now)
                attributes = {
                    k: v for k, v in record.attributes.items() if k != DEFERRALS_ATTRIBUTE
                }
                count = int(record.attributes.get(DEFERRALS_ATTRIBUTE, "0")) + 1
                attributes[DEFERRALS_ATTRIBUTE] = str(count)
                entries.append(
                    {
                        "Id": str(index),
                        "MessageBody": record.body,
                        "DelaySeconds": min(MAX_DELAY_SECONDS, max(0, delay)),
                        "MessageAttributes": {
                            k: {"DataType": "String", "StringValue": v}
                            for k, v in attributes.items()
                        },
                    }
                )
            answer = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            batch = records[start : start + 10]
            failed.update(batch[int(f["Id"])].record_id for f in answer.get("Failed", []))
        return failed


class RejectedStore:
    """One gzip JSON Lines object per invocation under rejected/dt=YYYY-MM-DD/."""

    def __init__(self, bucket: str, client: Any, clock: Callable[[], float] = time.time) -> None:
        self._bucket = bucket
        self._client = client
        self._clock = clock

    def store(self, records: list[ParkedRecord]) -> str | None:
        if not records:
            return None
        at = datetime.fromtimestamp(self._clock(), UTC)
        key = f"rejected/dt={at:%Y-%m-%d}/{at:%H%M%S}-{uuid.uuid4().hex}.jsonl.gz"
        lines = (
            json.dumps(
                {
                    "record_id": r.record_id,
                    "reasons": r.reasons,
                    "rejected_at": at.isoformat(),
                    "attributes": r.attributes,
                    "body": r.body,
                },
                ensure_ascii=False,
            )
            for r in records
        )
        data = gzip.compress("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
        self._client.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            ContentType="application/x-ndjson",
            ContentEncoding="gzip",
        )
        return key
