"""Clients built once per execution environment, lazily, so tests can configure them first.

AWS endpoints come from boto3's own AWS_ENDPOINT_URL, so the same code runs against AWS and the
embedded local stack.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from trigger_relay.pipeline.routes import RoutesFile, load_routes
from trigger_relay.pipeline.vendor_calls import HTTP_TIMEOUT
from trigger_relay.stores.credentials import Credentials, MintedTokens, SharedTokenStore
from trigger_relay.stores.quota import QuotaGate
from trigger_relay.stores.tickets import SlotTickets

_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=20)


@cache
def aws(service: str) -> Any:
    return boto3.client(service, config=_BOTO_CONFIG)  # type: ignore[call-overload]


@lru_cache(maxsize=1)
def http() -> httpx.Client:
    return httpx.Client(timeout=HTTP_TIMEOUT, limits=httpx.Limits(max_connections=20))


@lru_cache(maxsize=4)
def _routes(path: Path, mtime_ns: int) -> RoutesFile:
    return load_routes(path)


def routes(path: Path) -> RoutesFile:
    """The routes file, parsed once and again only when it changes."""
    return _routes(path, path.stat().st_mtime_ns if path.exists() else 0)


@lru_cache(maxsize=4)
def quota_gate(table: str) -> QuotaGate:
    """One gate per execution environment: it remembers each schedule's state between calls."""
    return QuotaGate(table, aws("dynamodb"))


@lru_cache(maxsize=4)
def slot_tickets(table: str) -> SlotTickets:
    """One per execution environment: the signing secret is read once."""
    return SlotTickets(table, aws("dynamodb"))


@lru_cache(maxsize=4)
def minted_tokens(table: str) -> MintedTokens:
    """One access-token cache per execution environment, backed by the table for all Lambdas."""
    return MintedTokens(http(), shared=SharedTokenStore(table, aws("dynamodb")))


@lru_cache(maxsize=4)
def credentials(table: str) -> Credentials:
    return Credentials(minted_tokens(table))
