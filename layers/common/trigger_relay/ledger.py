"""The delivery ledger: which (event, route) pairs reached the vendor in the last 24 hours.

Keyed on the business event id (EventBridge id or the producer's idempotency key, else the SQS
message id) and the route, so a redelivered message or an event published twice triggers once.
Cost: one BatchGetItem per 100 records and one BatchWriteItem per 25 delivered pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

TTL_SECONDS = 24 * 3600
_GET_MAX = 100
_WRITE_MAX = 25


class DeliveryLedger:
    def __init__(self, table: str, client: Any, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._client = client
        self._clock = clock
        self.requests = 0

    def delivered(self, keys: Iterable[str]) -> set[str]:
        """The keys already delivered (and not yet expired)."""
        now = int(self._clock())
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(wanted), _GET_MAX):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"id": {"S": k}} for k in wanted[start : start + _GET_MAX]],
                    "ProjectionExpression": "id, expiration",
                    "ConsistentRead": True,
                }
            }
            while request:
                self.requests += 1
                answer = self._client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    if int(item.get("expiration", {"N": "0"})["N"]) > now:
                        found.add(item["id"]["S"])
                request = answer.get("UnprocessedKeys") or {}
        return found

    def remember(self, keys: Iterable[str]) -> None:
        expiration = str(int(self._clock()) + TTL_SECONDS)
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), _WRITE_MAX):
            items = [
                {"PutRequest": {"Item": {"id": {"S": k}, "expiration": {"N": expiration}}}}
                for k in wanted[start : start + _WRITE_MAX]
            ]
            request: dict[str, Any] = {self._table: items}
            while request:
                self.requests += 1
                answer = self._client.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or {}
