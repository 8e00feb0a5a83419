"""QuotaGate: call slots for a vendor API shared by every Lambda, in one DynamoDB item.

The vendors count calls per API in windows of a few minutes and lock the API for 30 minutes
when the count passes the limit. A fixed calendar window would allow twice the limit across
a boundary, so slots are handed out as a schedule instead (GCRA, the "virtual scheduling" form):

* the item holds ``tat``, the time the next slot starts, in epoch milliseconds;
* a caller reserves the slot at ``tat`` and moves ``tat`` on by one interval
  ``T = (window + margin) / (calls - 1/2)``; it then waits until its slot and calls the vendor.

Slot starts are at least ``T`` apart, so any closed interval of ``L = window + margin`` seconds
holds at most ``floor(L / T) + 1 = floor(calls - 1/2) + 1 = calls`` of them. A vendor window of
``window`` seconds therefore holds at most ``calls`` calls even when clients' clocks differ, or
calls arrive late, by up to ``margin`` altogether - and a single call late by up to half an
interval more still cannot make it ``calls + 1``. That half interval is the slack kept for a
busy machine: ``T`` a hair over ``L / calls`` keeps the bound with an exact margin, and in the
benchmark a call late by more than the margin then locked the vendor. With the default 2 s
margin a backlog gets ``window / (T * calls)`` of the documented limit: 98.8% of Zoho Marketing
Automation's 100 calls / 5 min, 99.2% of Zoho Campaigns' 500 (``(calls - 1)`` gave 98.3% and
99.1%).

The margin is split in two: clock skew between Lambdas, and how late a call may reach the
vendor after its slot (``Limit.lateness_seconds``), which the caller enforces.

Under a backlog ``tat`` is ahead of every clock and every reservation is one conditional
``UpdateItem`` that succeeds;
concurrent callers are serialised by DynamoDB and get distinct slots. The lock check is part of
the same condition, and a refused condition returns the item (``ALL_OLD``), so a denial costs
no extra read and says when to come back. Because ``tat`` and the lock end only move forward,
each Lambda keeps the last ones it saw, and a denial they already imply costs no request.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class Limit(BaseModel):
    """A vendor API's documented limit and how closely we run to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calls: int = Field(ge=2, description="calls allowed per window")
    window_seconds: float = Field(gt=0)
    lock_seconds: float = Field(default=1800, ge=0, description="how long the vendor locks")
    safety_margin_seconds: float = Field(
        default=2.0, ge=0, description="clock skew plus delivery delay allowed for"
    )
    max_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        description="how long an invocation may wait for slots, in all (billed Lambda time)",
    )

    @model_validator(mode="after")
    def _sane(self) -> Limit:
        if self.safety_margin_seconds >= self.window_seconds:
            raise ValueError("safety_margin_seconds must be shorter than window_seconds")
        return self

    @property
    def interval_ms(self) -> int:
        """Milliseconds between slot starts, rounded up: (window + margin) / (calls - 1/2)."""
        span = (self.window_seconds + self.safety_margin_seconds) * 1000
        return math.ceil(span / (self.calls - 0.5))

    @property
    def lateness_seconds(self) -> float:
        """How late after its slot a call may reach the vendor: half the margin. The other half
        is for clock skew between Lambdas. The caller (delivery.VendorCaller) drops a slot that
        came back later than this, and caps the time spent waiting for a connection and
        connecting by what is left of it."""
        return self.safety_margin_seconds / 2

    @property
    def interval(self) -> float:
        return self.interval_ms / 1000

    @property
    def booking_seconds(self) -> float:
        """How far ahead a full call may book a slot it cannot wait for (its records then wait
        on the queue, stores/tickets.py): a fifth of the window, within SQS's 900 s delay."""
        return min(self.window_seconds / 5, 840.0)

    def utilisation(self) -> float:
        """The share of the documented limit a backlog gets: window / interval per window."""
        return (self.window_seconds / self.interval) / self.calls


@dataclass(frozen=True, slots=True)
class Grant:
    slot_at: float  # epoch seconds at which the call may be made


@dataclass(frozen=True, slots=True)
class Denial:
    retry_at: float  # epoch seconds when asking again makes sense
    locked: bool  # the vendor locked the API (not just a full schedule)


def quota_key(vendor: str, account: str, api: str) -> str:
    """The one shared counter of a vendor API for one account: ``vendor#account#api``."""
    return f"{vendor}#{account}#{api}"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


_RECENT_MS = 5000
_NOT_LOCKED = "(attribute_not_exists(locked_until) OR locked_until <= :now)"


class QuotaGate:
    """Reserve call slots and record vendor locks; one item per (vendor, account, API)."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._client = client
        self._clock = clock
        self._tat_seen: dict[str, int] = {}  # last tat seen per key, to pick the likely form
        self._lock_seen: dict[str, int] = {}  # latest lock end seen per key
        self.requests = 0  # DynamoDB requests made, for metrics and benchmarks

    def reserve(self, key: str, limit: Limit, max_wait: float | None = None) -> Grant | Denial:
        """A slot to call at, or when to come back. At most four conditional writes.

        ``max_wait`` (default: the limit's) is how far ahead the slot may be; 0 asks for a
        slot free now, and a Denial then says when the next one is."""
        interval = limit.interval_ms
        wait_ms = _ms(limit.max_wait_seconds if max_wait is None else max_wait)
        # Guess the form from the last tat seen: a schedule that was busy moments ago most
        # likely still is. A wrong guess is refused with the item, and the next try sets tat
        # from the value that came back: a compare-and-set, which a clock passing tat between
        # the two requests cannot refuse (with intervals shorter than a round trip, guessing
        # the form again could be wrong every time).
        now = _ms(self._clock())
        # tat and locked_until only ever move forward, so what this environment saw last is a
        # floor: while it is beyond reach the table would refuse too, and asking only costs a
        # write (under a backlog, concurrent Lambdas would otherwise re-ask for every record).
        known_tat, known_lock = self._tat_seen.get(key, 0), self._lock_seen.get(key, 0)
        if known_lock > now:
            return Denial(known_lock / 1000, locked=True)
        if known_tat > now + wait_ms:
            return Denial((known_tat - wait_ms) / 1000, locked=False)
        backlog = known_tat >= now - max(2 * interval, _RECENT_MS)
        seen: int | None = None
        for _ in range(4):
            now = _ms(self._clock())
            try:
                if seen is not None:
                    same = "tat = :seen" if seen else "attribute_not_exists(tat)"
                    tat = self._update(
                        key,
                        "SET tat = :next ADD granted :one",
                        f"{same} AND {_NOT_LOCKED}",
                        {":next": max(seen, now) + interval, ":now": now}
                        | ({":seen": seen} if seen else {}),
                    )
                elif backlog:
                    tat = self._update(
                        key,
                        "SET tat = tat + :t ADD granted :one",
                        f"tat >= :now AND tat <= :horizon AND {_NOT_LOCKED}",
                        {
                            ":t": interval,
                            ":now": now,
                            ":horizon": now + wait_ms,
                        },
                    )
                else:
                    tat = self._update(
                        key,
                        "SET tat = :next ADD granted :one",
                        f"(attribute_not_exists(tat) OR tat < :now) AND {_NOT_LOCKED}",
                        {":next": now + interval, ":now": now},
                    )
            except _Refused as refused:
                item = refused.item
                locked_until = int(item.get("locked_until", {"N": "0"})["N"])
                seen = int(item.get("tat", {"N": "0"})["N"])
                self._tat_seen[key] = seen
                if locked_until > now:
                    self._saw_lock(key, locked_until)
                    return Denial(locked_until / 1000, locked=True)
                if seen > now + wait_ms:
                    return Denial((seen - wait_ms) / 1000, locked=False)
                continue  # another caller took a slot in between: set it from what came back
            self._tat_seen[key] = tat
            return Grant((tat - interval) / 1000)
        return Denial(self._clock() + limit.interval, locked=False)

    def spend(self, key: str, slot_at: float) -> bool:
        """Use a slot booked earlier (stores/tickets.py): True for the one caller that asks
        first, and only while the API is not locked.

        The lock is read (consistently) from the schedule's item, and the slot is marked used
        in an item of its own (``<key>#spent#<slot ms>``, created on condition that it does
        not exist, expiring a day later through the table's TTL). Not one transaction with the
        lock as a condition check: "a PutItem, UpdateItem, or DeleteItem request for an item
        conflicts with an ongoing TransactWriteItems request that includes the same item"
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html,
        "Transaction conflict handling"), and every reservation writes the schedule's item."""
        now = _ms(self._clock())
        if self._lock_seen.get(key, 0) > now:
            return False
        self.requests += 2
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": key}},
            ProjectionExpression="locked_until",
            ConsistentRead=True,
        ).get("Item", {})
        locked_until = int(item.get("locked_until", {"N": "0"})["N"])
        if locked_until > now:
            self._saw_lock(key, locked_until)
            return False
        slot = round(slot_at * 1000)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"{key}#spent#{slot}"}},
                UpdateExpression="SET expiration = :expires",
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeValues={":expires": _n(slot // 1000 + 86400)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False  # another Lambda spent it
        return True

    def record_lock(self, key: str, seconds: float) -> float:
        """Record a lock the vendor reported, for every caller; returns when it ends."""
        until = _ms(self._clock() + seconds)
        self._saw_lock(key, until)
        with contextlib.suppress(_Refused):  # refused: a later lock end is already recorded
            self._update(
                key,
                "SET locked_until = :until ADD locks_recorded :one",
                "attribute_not_exists(locked_until) OR locked_until < :until",
                {":until": until},
            )
        return until / 1000

    def _saw_lock(self, key: str, until_ms: int) -> None:
        """Remember a lock end: it only moves forward, so the latest seen is a floor."""
        self._lock_seen[key] = max(until_ms, self._lock_seen.get(key, 0))

    def _update(self, key: str, expression: str, condition: str, values: dict[str, int]) -> int:
        self.requests += 1
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues={
                    name: _n(v) for name, v in {**values, ":one": 1}.items()
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            response: dict[str, Any] = dict(exc.response)
            raise _Refused(response.get("Item", {})) from None
        return int(answer.get("Attributes", {}).get("tat", {"N": "0"})["N"])


class _Refused(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition refused")
        self.item = item
