"""What a vendor answer means for each recipient it was about."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    DELIVERED = "delivered"  # triggered, or already triggered before (a success)
    REJECTED = "rejected"  # will never succeed as sent: stored with its reason, not retried
    RETRY = "retry"  # transient (5xx, timeout, bad token): try again later
    LOCKED = "locked"  # the vendor locked this API: defer until the lock ends


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    outcome: Outcome
    detail: str  # "triggered", "already_triggered", or the vendor's code and message


@dataclass(frozen=True, slots=True)
class CallResult:
    """The parsed answer to one call: an outcome for every recipient that was sent."""

    by_recipient: dict[str, RecipientOutcome]
    vendor_code: str | None = None
    token_invalid: bool = False

    @classmethod
    def same_for_all(
        cls, keys: list[str], outcome: Outcome, detail: str, *, code: str | None = None
    ) -> CallResult:
        one = RecipientOutcome(outcome, detail)
        return cls({key: one for key in keys}, vendor_code=code)

    @property
    def locked(self) -> bool:
        return any(r.outcome is Outcome.LOCKED for r in self.by_recipient.values())


def http_failure(status_code: int, keys: list[str]) -> CallResult | None:
    """The outcome an HTTP status alone decides, or None when the body must be read."""
    if status_code == 429:
        return CallResult.same_for_all(keys, Outcome.LOCKED, "HTTP 429", code="429")
    if status_code >= 500:
        return CallResult.same_for_all(keys, Outcome.RETRY, f"HTTP {status_code}")
    return None
