"""Where records go that are not delivered now: deferred back to the queue, or stored to S3.

A deferred record is sent to the ingest queue again with a delay (up to SQS's 15 minutes),
carrying its identity and how often it was deferred (queue_messages.Handling), and the original
is acknowledged, so waiting for quota or a lock never counts towards the DLQ's receive limit.
A record deferred too often or for too long is rejected instead ("deferred too long").

A rejected record is stored under ``rejected/`` with its reasons, an uncertain one (the vendor
may have acted on it) under ``uncertain/``: never retried automatically, never lost. Storing
raises on failure, and the pipeline then lets SQS deliver the record again.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

from trigger_relay.pipeline.queue_messages import Attribute, Handling, Outgoing, QueueWriter

REJECTED_PREFIX = "rejected/"
UNCERTAIN_PREFIX = "uncertain/"


@dataclass(frozen=True, slots=True)
class DeferralLimit:
    """How long a record may keep coming back before it is rejected as "deferred too long".

    The age must stay well inside the delivery ledger's 24 hours, or a record deferred past it
    would no longer be recognised as the same event."""

    max_deferrals: int = 48
    max_age_seconds: float = 6 * 3600

    def __post_init__(self) -> None:
        if self.max_deferrals < 1 or not 0 < self.max_age_seconds <= 20 * 3600:
            raise ValueError("max_deferrals >= 1 and 0 < max_age_seconds <= 72000 (20 hours)")

    def exceeded(self, handling: Handling, now: float, *, counted: bool = True) -> str | None:
        """Why one more deferral is one too many, or None. ``counted``: the deferral counts
        towards ``max_deferrals`` (one for a full quota schedule does not; its age does)."""
        if counted and handling.deferrals + 1 > self.max_deferrals:
            return f"deferred too long: {handling.deferrals} deferrals"
        if handling.first_seen is not None and now - handling.first_seen > self.max_age_seconds:
            return f"deferred too long: first seen {now - handling.first_seen:.0f} s ago"
        return None


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    record_id: str
    body: str
    attributes: dict[str, Attribute]
    reasons: list[str]
    retry_at: float | None = None
    handling: Handling = field(default_factory=Handling)
    ledger_keys: list[str] = field(default_factory=list)  # the pairs an operator may redrive
    counted: bool = True  # this deferral counts towards DeferralLimit.max_deferrals


class Deferrals:
    def __init__(
        self, queue_url: str, client: SQSClient, clock: Callable[[], float] = time.time
    ) -> None:
        self._writer = QueueWriter(client, queue_url)
        self._clock = clock

    def park(self, records: list[ParkedRecord]) -> dict[str, str]:
        """Re-enqueue with a delay; returns {record id: why} for those not re-enqueued.

        Records due back at the same moment (a call's records, held or waiting for the same
        slot) go as bundles, so that they come back to one invocation together."""
        now = self._clock()
        by_time: dict[float, list[int]] = {}
        for index, record in enumerate(records):
            by_time.setdefault(record.retry_at or now, []).append(index)
        messages: list[Outgoing] = []
        carried: list[list[tuple[int, Outgoing]]] = []  # each message's records, as singles
        for retry_at, indexes in by_time.items():
            members = [
                Outgoing(
                    records[i].body,
                    records[i].attributes,
                    replace(
                        records[i].handling,
                        deferrals=records[i].handling.deferrals + int(records[i].counted),
                        first_seen=records[i].handling.first_seen or now,
                    ),
                    retry_at - now,
                )
                for i in indexes
            ]
            for message, positions in Outgoing.bundles(members):
                messages.append(message)
                carried.append([(indexes[p], members[p]) for p in positions])
        failed = self._writer.send(messages)
        # A bundle SQS refused is tried again as its members, one message each: if one of them
        # were left over, the invocation would have to return the whole bundle it came in.
        retry = [
            single
            for message, _ in failed.items()
            if len(carried[message]) > 1
            for single in carried[message]
        ]
        still = self._writer.send([member for _, member in retry]) if retry else {}
        resent = {index for n, (index, _) in enumerate(retry) if n not in still}
        return {
            records[index].record_id: reason
            for message, reason in failed.items()
            for index, _ in carried[message]
            if index not in resent
        }


class RejectedStore:
    """One gzip JSON Lines object per invocation under <prefix>dt=YYYY-MM-DD/."""

    def __init__(
        self,
        bucket: str,
        client: S3Client,
        clock: Callable[[], float] = time.time,
        prefix: str = REJECTED_PREFIX,
    ) -> None:
        self._bucket = bucket
        self._client = client
        self._clock = clock
        self._prefix = prefix

    def store(self, records: list[ParkedRecord]) -> str | None:
        if not records:
            return None
        at = datetime.fromtimestamp(self._clock(), UTC)
        key = f"{self._prefix}dt={at:%Y-%m-%d}/{at:%H%M%S}-{uuid.uuid4().hex}.jsonl.gz"
        lines = (
            json.dumps(
                {
                    "record_id": r.record_id,
                    "event_id": r.handling.event_id,
                    "reasons": r.reasons,
                    "rejected_at": at.isoformat(),
                    "attributes": {k: v.to_json() for k, v in r.attributes.items()},
                    "handling": r.handling.to_json(),
                    **({"ledger_keys": r.ledger_keys} if r.ledger_keys else {}),
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
