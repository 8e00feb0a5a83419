"""The recipients sync's state in the cursor table: a cursor per (campaign, action), the final
answers Zoho gave, and the lease that lets one run at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class SyncCursors:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    @staticmethod
    def _pk(campaign: str, action: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"{campaign}#{action}"}}

    def next_index(self, campaign: str, action: str) -> int:
        item = self._client.get_item(
            TableName=self._table, Key=self._pk(campaign, action), ConsistentRead=True
        ).get("Item")
        return int(item["next_index"]["N"]) if item and "next_index" in item else 1

    def final(self, campaign: str, action: str) -> tuple[str, str, float] | None:
        """The final answer Zoho gave this (campaign, action): (code, reason, epoch s), or None."""
        item = (
            self._client.get_item(
                TableName=self._table, Key=self._pk(campaign, action), ConsistentRead=True
            ).get("Item")
            or {}
        )
        if "final_code" not in item:
            return None
        return (
            item["final_code"]["S"],
            item.get("final_reason", {}).get("S", ""),
            float(item["final_at"]["N"]),
        )

    def mark_final(self, campaign: str, action: str, code: str, reason: str, at: float) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._pk(campaign, action),
            UpdateExpression="SET final_code = :c, final_reason = :r, final_at = :t",
            ExpressionAttributeValues={
                ":c": {"S": code},
                ":r": {"S": reason},
                ":t": {"N": str(at)},
            },
        )

    def clear_final(self, campaign: str, action: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._pk(campaign, action),
            UpdateExpression="REMOVE final_code, final_reason, final_at",
        )

    def advance(self, campaign: str, action: str, expected: int, to: int, synced_at: str) -> bool:
        """Move the cursor from expected to to; False if another run moved it first."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._pk(campaign, action),
                UpdateExpression="SET next_index = :to, synced_at = :at",
                ConditionExpression="attribute_not_exists(next_index) OR next_index = :from",
                ExpressionAttributeValues={
                    ":to": {"N": str(to)},
                    ":from": {"N": str(expected)},
                    ":at": {"S": synced_at},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


class SyncLease:
    """One sync run at a time, without reserved concurrency: the item ``lease#recipients-sync``
    in the cursor table names the run that holds it and until when.

    A run takes the lease until its own hard end (Lambda's timeout) plus a grace for clock
    skew, so a holder that dies mid-run can never still be writing when the lease lapses:
    Lambda has stopped it by then. Two overlapping runs would otherwise write the same
    ``from-N`` object with different contents and only one could move the cursor."""

    KEY = {"pk": {"S": "lease#recipients-sync"}}
    GRACE_SECONDS = 5.0

    def __init__(
        self, table: str, client: DynamoDBClient, clock: Callable[[], float] = time.time
    ) -> None:
        self._table = table
        self._client = client
        self._clock = clock

    def acquire(self, holder: str, ends_at: float) -> float | None:
        """Take the lease for a run that cannot outlive ends_at. None when taken; otherwise
        the time the other holder's lease lapses."""
        now = self._clock()
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self.KEY,
                UpdateExpression="SET holder = :h, lease_until = :until",
                # the same holder again: Lambda retries an async invocation with its request id,
                # and only after the earlier attempt has ended
                ConditionExpression=(
                    "attribute_not_exists(lease_until) OR lease_until < :now OR holder = :h"
                ),
                ExpressionAttributeValues={
                    ":h": {"S": holder},
                    ":until": {"N": str(ends_at + self.GRACE_SECONDS)},
                    ":now": {"N": str(now)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            response: dict[str, Any] = dict(exc.response)
            item = response.get("Item") or {}
            return float(item.get("lease_until", {}).get("N", now))
        return None

    def release(self, holder: str) -> None:
        """Give the lease back early, if this run still holds it."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self.KEY,
                UpdateExpression="REMOVE holder, lease_until",
                ConditionExpression="holder = :h",
                ExpressionAttributeValues={":h": {"S": holder}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
