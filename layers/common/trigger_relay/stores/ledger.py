"""The delivery ledger: which (event, route) pairs reached the vendor in the last 24 hours.

Keyed on the business event id (EventBridge id or the producer's idempotency key, else the SQS
message id) and the route, so a redelivered message or an event published twice triggers once.

Before calling, an invocation *claims* its pairs: a conditional put per pair, 100 to a
transaction, that only succeeds when the pair is neither delivered nor claimed by a live
invocation. SQS may hand the same message to two invocations at once; a read-then-write ledger
lets both call the vendor, a claim lets one. A claim lasts as long as the invocation can; after
the call, delivered pairs are remembered for 24 hours and the others released. An invocation
killed in between leaves claims that lapse by themselves.

Pairs whose vendor does not deduplicate and whose route is ``at_most_once`` are *strict*: a
claim on them that lapsed without a result means an invocation died, perhaps mid-call, so the
pair may have reached the vendor. It is not claimed again but reported ``lapsed``, and the
pipeline settles it as uncertain. A pair can also be remembered as ``uncertain`` (the vendor may
have accepted it): no invocation calls it again until an operator redrives it on purpose.

Cost per 100 records: one TransactWriteItems (the claims), one BatchWriteItem per 25 pairs
delivered or released.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

TTL_SECONDS = 24 * 3600
CONFLICT_SECONDS = 30.0  # when another transaction kept a pair busy: try again after this
_GET_MAX = 100
_CLAIM_MAX = 100  # items in one transaction
_WRITE_MAX = 25
_CLAIMABLE = "attribute_not_exists(id) OR expiration <= :now OR claimed_until <= :now"
_CLAIMABLE_STRICT = "attribute_not_exists(id) OR expiration <= :now"
UNCERTAIN = "uncertain"


@dataclass
class Claims:
    """What claiming a set of pairs found."""

    mine: set[str] = field(default_factory=set)  # claimed now: this invocation delivers them
    delivered: set[str] = field(default_factory=set)  # delivered earlier
    busy: dict[str, float] = field(default_factory=dict)  # another invocation's, until (epoch s)
    uncertain: set[str] = field(default_factory=set)  # settled as uncertain earlier
    lapsed: set[str] = field(default_factory=set)  # strict pairs whose claim lapsed, no result


class DeliveryLedger:
    def __init__(
        self,
        table: str,
        client: DynamoDBClient,
        clock: Callable[[], float] = time.time,
        hold_seconds: float = 900.0,
    ) -> None:
        self._table = table
        self._client = client
        self._clock = clock
        self._hold_seconds = hold_seconds  # how long a claim keeps others off a pair
        self.requests = 0

    def claim(self, keys: Iterable[str], strict: Collection[str] = ()) -> Claims:
        """Claim the pairs not yet settled nor held by another invocation. A ``strict`` pair's
        lapsed claim is not taken over: it is reported in ``lapsed``."""
        now = self._clock()
        until = int(now + self._hold_seconds) + 1
        wanted = list(dict.fromkeys(keys))
        claims = Claims()
        for start in range(0, len(wanted), _CLAIM_MAX):
            pending = wanted[start : start + _CLAIM_MAX]
            for _ in range(3):
                if not pending:
                    break
                pending = self._claim(pending, int(now), until, claims, strict)
            for key in pending:  # kept busy by transactions that overlapped ours
                claims.busy[key] = now + CONFLICT_SECONDS
        return claims

    def _claim(
        self, keys: list[str], now: int, until: int, claims: Claims, strict: Collection[str]
    ) -> list[str]:
        """One transaction; returns the keys to try again (those it was cancelled for)."""
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "id": {"S": k},
                        "claimed_until": {"N": str(until)},
                        # TTL removes a lapsed claim; a strict one must outlive redeliveries
                        "expiration": {"N": str(until + TTL_SECONDS)},
                    },
                    "ConditionExpression": _CLAIMABLE_STRICT if k in strict else _CLAIMABLE,
                    "ExpressionAttributeValues": {":now": {"N": str(now)}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for k in keys
        ]
        self.requests += 1
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            if len(reasons) != len(keys):
                return keys
            again = []
            for key, reason in zip(keys, reasons, strict=True):
                if reason.get("Code") != "ConditionalCheckFailed":
                    again.append(key)  # "None": cancelled for another item; or a conflict
                    continue
                item: dict[str, Any] = dict(reason.get("Item") or {})
                if "claimed_until" in item:
                    claimed_until = float(item["claimed_until"]["N"])
                    if claimed_until <= now:  # only a strict pair is refused for a lapsed claim
                        claims.lapsed.add(key)
                    else:
                        claims.busy[key] = claimed_until
                elif item.get("outcome", {}).get("S") == UNCERTAIN:
                    claims.uncertain.add(key)
                else:
                    claims.delivered.add(key)
            return again
        claims.mine.update(keys)
        return []

    def release(self, keys: Iterable[str]) -> None:
        """Give up claims on pairs that were not delivered, so their retries can claim them."""
        self._write([{"DeleteRequest": {"Key": {"id": {"S": k}}}} for k in dict.fromkeys(keys)])

    def delivered(self, keys: Iterable[str]) -> set[str]:
        """The keys already delivered (and not yet expired); claimed ones are not."""
        now = int(self._clock())
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(wanted), _GET_MAX):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"id": {"S": k}} for k in wanted[start : start + _GET_MAX]],
                    "ProjectionExpression": "id, expiration, claimed_until, outcome",
                    "ConsistentRead": True,
                }
            }
            while request:
                self.requests += 1
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    if "claimed_until" in item or "outcome" in item:
                        continue
                    if int(item.get("expiration", {"N": "0"})["N"]) > now:
                        found.add(item["id"]["S"])
                request = answer.get("UnprocessedKeys") or {}
        return found

    def remember(self, keys: Iterable[str], outcome: str = "delivered") -> None:
        """Record settled pairs for 24 hours (this replaces their claims): delivered, or
        ``uncertain`` (kept from every automatic retry)."""
        expiration = str(int(self._clock()) + TTL_SECONDS)
        extra = {"outcome": {"S": outcome}} if outcome == UNCERTAIN else {}
        self._write(
            [
                {"PutRequest": {"Item": {"id": {"S": k}, "expiration": {"N": expiration}, **extra}}}
                for k in dict.fromkeys(keys)
            ]
        )

    def forget(self, keys: Iterable[str]) -> None:
        """Drop pairs from the ledger: an operator's deliberate redrive of uncertain pairs."""
        self.release(keys)

    def _write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), _WRITE_MAX):
            request: dict[str, Any] = {self._table: requests[start : start + _WRITE_MAX]}
            while request:
                self.requests += 1
                answer = self._client.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or {}
