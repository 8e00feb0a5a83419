"""Quota status: for each vendor API, calls used in the current window, next free slot, lock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trigger_relay.pipeline.routes import RoutesFile

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
from trigger_relay.stores.quota import Limit
from trigger_relay.vendors import registry


@dataclass(frozen=True)
class ApiStatus:
    key: str  # vendor#account#api
    limit: Limit
    used_in_window: int  # slots started in the last window, at most (from the schedule)
    next_free_in: float  # seconds until a new call could start
    locked_until: float | None
    granted_total: int
    locks_recorded: int

    def row(self, now: float) -> str:
        lock = "-"
        if self.locked_until:
            lock = f"LOCKED {self.locked_until - now:,.0f} s more"
        nxt = "now" if self.next_free_in <= 0 else f"in {self.next_free_in:.1f} s"
        return (
            f"{self.key:<58} {self.used_in_window:>4}/{self.limit.calls:<4} per "
            f"{self.limit.window_seconds:>5.0f} s  next slot {nxt:<10}  {lock}"
        )


def _limit(key: str, routes: RoutesFile | None) -> Limit:
    _, account, api = key.split("#", 2)
    if routes is not None and account in routes.accounts:
        return routes.accounts[account].limit(api)
    return registry.limit(api) or Limit(calls=500, window_seconds=300)


def quota_status(
    dynamodb: DynamoDBClient,
    table: str,
    routes: RoutesFile | None = None,
    now: float | None = None,
) -> list[ApiStatus]:
    now = time.time() if now is None else now
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    statuses = []
    for item in sorted(items, key=lambda i: i["pk"]["S"]):
        key = item["pk"]["S"]
        if key.count("#") != 2:  # not a schedule (the shared Zoho token lives here too)
            continue
        limit = _limit(key, routes)
        tat = int(item.get("tat", {"N": "0"})["N"]) / 1000
        locked_until = int(item.get("locked_until", {"N": "0"})["N"]) / 1000
        window_start = now - limit.window_seconds
        granted = int(item.get("granted", {"N": "0"})["N"])
        # Slots are interval apart, so at most this many started since the window began.
        used = 0 if tat <= window_start else round((tat - window_start) / limit.interval)
        statuses.append(
            ApiStatus(
                key=key,
                limit=limit,
                used_in_window=min(limit.calls, used, granted),
                next_free_in=max(tat, locked_until) - now,
                locked_until=locked_until if locked_until > now else None,
                granted_total=granted,
                locks_recorded=int(item.get("locks_recorded", {"N": "0"})["N"]),
            )
        )
    return statuses


def format_status(statuses: list[ApiStatus], now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    if not statuses:
        return ["no vendor API has been called yet"]
    header = f"{'VENDOR#ACCOUNT#API':<58} {'CALLS IN WINDOW':<21}  {'NEXT SLOT':<20}  LOCK"
    return [header, *(s.row(now) for s in statuses)]
