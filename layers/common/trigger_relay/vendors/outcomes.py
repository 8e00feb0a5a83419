"""What a vendor answer means for each recipient it was about.

Only a 2xx answer whose body parses as success is a delivery, for every API. The rest, by what
the vendor may have done with the request:

* certainly not acted on: connection refused or timed out while connecting, no free
  connection in the pool, HTTP 408, 5xx other than 502/504 → ``RETRY`` (safe to repeat);
* maybe acted on: a read timeout or a connection reset after the request was written, a
  502 or 504 from a gateway in front of the vendor, a 2xx whose body is empty, HTML or
  unreadable → ``UNCERTAIN``; repeated automatically only where the vendor deduplicates or
  the route asks for ``at_least_once`` (pipeline/vendor_calls.py);
* refused as sent: a 3xx redirect (the client does not follow it: the vendor did nothing),
  HTTP 414 (a call of many recipients is split and sent again), the vendor's permanent
  error codes → ``REJECTED``;
* 429 Too Many Requests → ``LOCKED`` until its ``Retry-After`` (RFC 9110 section 10.2.3:
  seconds or an HTTP date), else the API's lock period.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import httpx


class Outcome(StrEnum):
    DELIVERED = "delivered"  # triggered, or already triggered before (a success)
    REJECTED = "rejected"  # will never succeed as sent: stored with its reason, not retried
    RETRY = "retry"  # certainly not acted on (5xx, connect error, bad token): safe to repeat
    UNCERTAIN = "uncertain"  # the vendor may have acted on it: repeat only where that is safe
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
    retry_after: float | None = None  # seconds the vendor asked us to wait (429 Retry-After)

    @classmethod
    def same_for_all(
        cls,
        keys: list[str],
        outcome: Outcome,
        detail: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> CallResult:
        one = RecipientOutcome(outcome, detail)
        return cls({key: one for key in keys}, vendor_code=code, retry_after=retry_after)

    @property
    def locked(self) -> bool:
        return any(r.outcome is Outcome.LOCKED for r in self.by_recipient.values())

    def repeatable(self) -> CallResult:
        """This result where repeating the call is safe: uncertain outcomes become retries."""
        if not any(r.outcome is Outcome.UNCERTAIN for r in self.by_recipient.values()):
            return self
        return CallResult(
            {
                key: RecipientOutcome(Outcome.RETRY, r.detail)
                if r.outcome is Outcome.UNCERTAIN
                else r
                for key, r in self.by_recipient.items()
            },
            self.vendor_code,
            self.token_invalid,
            self.retry_after,
        )


MAX_RETRY_AFTER_SECONDS = 6 * 3600.0  # a longer wait is taken as this: the deferral cap decides


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header's wait in seconds: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    wait = moment.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, wait), MAX_RETRY_AFTER_SECONDS)


def http_failure(response: httpx.Response, keys: list[str]) -> CallResult | None:
    """The outcome an HTTP status alone decides, or None when the body must be read."""
    status = response.status_code
    if 300 <= status < 400:
        location = urlsplit(response.headers.get("location", ""))
        where = f"{location.scheme}://{location.netloc}" if location.netloc else "elsewhere"
        return CallResult.same_for_all(
            keys,
            Outcome.REJECTED,
            f"HTTP {status}: redirected to {where}, not acted on; configure the final URL",
            code=str(status),
        )
    if status == 414:
        return CallResult.same_for_all(
            keys, Outcome.REJECTED, "HTTP 414: request URI too long", code="414"
        )
    if status == 429:
        wait = retry_after_seconds(response.headers.get("retry-after"))
        return CallResult.same_for_all(
            keys, Outcome.LOCKED, "HTTP 429", code="429", retry_after=wait
        )
    if status in (502, 504):
        return CallResult.same_for_all(
            keys,
            Outcome.UNCERTAIN,
            f"HTTP {status} from a gateway: the vendor may have acted on it",
            code=str(status),
        )
    if status == 408 or status >= 500:
        return CallResult.same_for_all(keys, Outcome.RETRY, f"HTTP {status}", code=str(status))
    return None


def unreadable(response: httpx.Response, keys: list[str], what: str) -> CallResult:
    """A body that does not parse: after a 2xx the vendor may have acted; a 4xx refused it."""
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    detail = f"{what} (HTTP {response.status_code}, {kind}, {len(response.content)} bytes)"
    if response.status_code < 300:
        return CallResult.same_for_all(keys, Outcome.UNCERTAIN, detail)
    return CallResult.same_for_all(keys, Outcome.REJECTED, detail, code=str(response.status_code))
