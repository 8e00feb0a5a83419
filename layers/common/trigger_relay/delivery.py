"""The one I/O edge of a trigger call: quota slot, token, HTTP, parse, lock bookkeeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .credentials import Credentials
from .observability import logger
from .quota import Denial, QuotaGate
from .routes import Account
from .vendors.outcomes import CallResult, Outcome
from .vendors.registry import TriggerApi
from .vendors.zoho import DEFAULT_CODES

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
TRANSIENT_ATTEMPTS = 2  # a 5xx or a timeout is tried once more, after a short pause


@dataclass(frozen=True, slots=True)
class Deferred:
    """The call was not made: no slot, or the API is locked. Try again at retry_at."""

    retry_at: float
    reason: str


@dataclass(frozen=True, slots=True)
class CallStats:
    api: str
    recipients: int
    latency: float


def quota_key(account_name: str, account: Account, api: TriggerApi) -> str:
    return f"{account.vendor}#{account_name}#{api.quota_api}"


class VendorCaller:
    """Makes one planned call within the shared quota, or says when it can be made."""

    def __init__(
        self,
        http: httpx.Client,
        quota: QuotaGate,
        credentials: Credentials,
        *,
        deadline: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self.quota = quota
        self._credentials = credentials
        self._deadline = deadline
        self._clock = clock
        self._sleep = sleep
        self.calls: list[CallStats] = []
        self.locks = 0  # vendor answers that locked an API

    def call(
        self,
        account_name: str,
        account: Account,
        api: TriggerApi,
        params: Any,
        recipients: list[Any],
    ) -> CallResult | Deferred:
        key = quota_key(account_name, account, api)
        limit = account.limit(api.action)
        base_url = api.base_url(account.data_centre, account.base_url) or ""
        codes = DEFAULT_CODES.with_lock_codes(account.lock_codes)
        refreshed = False
        attempt = 0
        while True:
            decision = self.quota.reserve(key, limit)
            if isinstance(decision, Denial):
                reason = "vendor lock recorded" if decision.locked else "quota: no free slot"
                return Deferred(decision.retry_at, reason)
            if decision.slot_at > self._deadline:
                return Deferred(decision.slot_at, "quota: slot after this invocation's deadline")
            self._sleep(max(0.0, decision.slot_at - self._clock()))
            result = self._send(account_name, account, api, params, recipients, base_url, codes)
            attempt += 1
            if result.locked:
                until = self.quota.record_lock(key, limit.lock_seconds)
                self.locks += 1
                logger.warning("vendor lock", extra={"quota_key": key, "locked_until": until})
                return Deferred(until, f"vendor locked the API ({result.vendor_code})")
            if result.token_invalid and not refreshed:
                self._credentials.invalidate(account_name, account)
                refreshed = True
                continue
            transient = all(r.outcome is Outcome.RETRY for r in result.by_recipient.values())
            if transient and attempt < TRANSIENT_ATTEMPTS and self._clock() + 1 < self._deadline:
                self._sleep(0.2 * attempt)
                continue
            return result

    def _send(
        self,
        account_name: str,
        account: Account,
        api: TriggerApi,
        params: Any,
        recipients: list[Any],
        base_url: str,
        codes: Any,
    ) -> CallResult:
        keys = [r.key for r in recipients]
        token = self._credentials.token(account_name, account)
        request = api.build(recipients, params, token=token, base_url=base_url)
        started = self._clock()
        try:
            result = api.parse(self._http.send(request), recipients, codes)
        except httpx.TimeoutException:
            result = CallResult.same_for_all(keys, Outcome.RETRY, "vendor timed out")
        except httpx.TransportError as exc:
            result = CallResult.same_for_all(
                keys, Outcome.RETRY, f"transport: {type(exc).__name__}"
            )
        self.calls.append(CallStats(api.action, len(recipients), self._clock() - started))
        return result
