"""Slot tickets: a quota slot booked for records that went back to the queue to wait for it.

A full call whose slot is further ahead than its invocation may wait keeps that slot: the
records go back on the queue and return just before it, carrying a *ticket* that lets the
invocation that gets them call in the slot without reserving again. Without it they would
queue at the back of the schedule on every return, and concurrent Lambdas would keep asking
for the same few slots.

Anyone allowed to send to the ingest queue can write the relay's message attribute, and a
ticket is permission to call the vendor without the quota: so tickets are signed (HMAC-SHA256)
with a secret that only the relay's functions can read, kept in the quota table and created by
the first function that needs it. A ticket is honoured once (QuotaGate.spend, whichever
Lambda asks first, not while the API is locked), and only in its slot (the caller drops a
slot that came back later than the limit allows).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ITEM_KEY = "slot-tickets"  # the quota table item that holds it (not a schedule)
MAX_TICKET_CHARS = 400


@dataclass(frozen=True, slots=True)
class Ticket:
    quota_key: str
    slot_at: float  # epoch seconds


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone takes "²", which int() refuses


def _hex(text: str) -> bool:
    return text.isascii() and all(c in "0123456789abcdef" for c in text)


class SlotTickets:
    """Issue and check tickets; one per execution environment (the secret is read once)."""

    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client
        self._secret: bytes | None = None
        self.requests = 0

    def issue(self, ticket: Ticket) -> str:
        slot_ms = round(ticket.slot_at * 1000)
        return f"{slot_ms}.{self._sign(ticket.quota_key, slot_ms)}.{ticket.quota_key}"

    def check(self, token: str) -> Ticket | None:
        """The ticket a token stands for, or None when the relay did not issue it."""
        if len(token) > MAX_TICKET_CHARS:
            return None
        slot, _, rest = token.partition(".")
        signature, _, key = rest.partition(".")
        if not (_digits(slot) and len(signature) == 64 and _hex(signature) and key):
            return None
        if not hmac.compare_digest(signature, self._sign(key, int(slot))):
            return None
        return Ticket(key, int(slot) / 1000)

    def _sign(self, key: str, slot_ms: int) -> str:
        message = f"{key}\n{slot_ms}".encode()
        return hmac.new(self._key(), message, hashlib.sha256).hexdigest()

    def _key(self) -> bytes:
        if self._secret is None:
            # One request: the secret already stored, or this new one if there was none.
            self.requests += 1
            answer = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": ITEM_KEY}},
                UpdateExpression="SET secret = if_not_exists(secret, :new)",
                ExpressionAttributeValues={":new": {"B": secrets.token_bytes(32)}},
                ReturnValues="ALL_NEW",
            )
            self._secret = bytes(answer["Attributes"]["secret"]["B"])
        return self._secret
