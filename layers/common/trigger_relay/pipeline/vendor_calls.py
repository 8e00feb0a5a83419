"""The one I/O edge of a trigger call: token, quota slot, HTTP, parse, lock bookkeeping.

Order matters for the quota's bound (quota.py): the token is fetched *before* a slot is
reserved (a token refresh may wait on another Lambda's mint lease), a slot that came back late
(a slow DynamoDB answer, an overslept wait) is not used, and the time the request may spend
waiting for a connection and connecting is capped by what is left of the limit's lateness
allowance. No call starts that could outlive the invocation: every HTTP timeout is capped by
the time left before the deadline.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from trigger_relay.observability import logger
from trigger_relay.pipeline.routes import Account
from trigger_relay.stores import quota
from trigger_relay.stores.credentials import Credentials, CredentialsError
from trigger_relay.stores.quota import Denial, Grant, Limit, QuotaGate
from trigger_relay.stores.tickets import Ticket
from trigger_relay.vendors.outcomes import CallResult, Outcome
from trigger_relay.vendors.vendor import TriggerApi

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=3.0)  # the client's default; each call caps it
TRANSIENT_ATTEMPTS = 2  # a call certainly not acted on is tried once more, after a short pause
MIN_CALL_SECONDS = 1.0  # no call starts with less time than this before the deadline
CREDENTIALS_RETRY_SECONDS = 120.0  # an account whose credentials failed waits this long
LATE_SLOTS = 3  # slots that came back too late to use, before the call is deferred
LATENESS_KEPT = 0.25  # a slot with less than this share of its lateness allowance left is unused
# Records waiting on the queue for a booked slot come back this long before it (and a batching
# window earlier still): SQS rounds delays up to whole seconds, and the message must be polled,
# so they are back 2 to 3 s early.
BOOKED_LEAD_SECONDS = 3.0


class CallOutlived(RuntimeError):
    """The answer did not arrive whole before the invocation's deadline."""


class NotStartedInTime(RuntimeError):
    """Every call thread was busy until the deadline: the request was never sent."""


@functools.cache
def _call_threads() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that make the calls, so that a call can be abandoned at the deadline; shared by
    every VendorCaller of the execution environment."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="vendor-call")


# Transport errors raised before the request reached the vendor: repeating them is safe.
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    NotStartedInTime,
)


@dataclass(frozen=True, slots=True)
class Deferred:
    """The call was not made: no slot, or the API is locked. Try again at retry_at."""

    retry_at: float
    reason: str
    busy: bool = False  # only because the schedule is full (no lock, no failure)
    # a slot booked for this call: the invocation that gets its records back calls in it
    ticket: Ticket | None = None


@dataclass(frozen=True, slots=True)
class CallStats:
    api: str
    recipients: int
    latency: float


def quota_key(account_name: str, account: Account, api: TriggerApi) -> str:
    return quota.quota_key(account.vendor, account_name, api.quota_api)


def call_timeout(limit: Limit, slot_at: float, now: float, deadline: float) -> httpx.Timeout | None:
    """Timeouts for a call at ``now`` in the slot at ``slot_at``, or None when the slot came too
    late to use (a slow DynamoDB answer, an overslept wait) or too close to the deadline.

    Waiting for a pooled connection and connecting (the time by which the request may reach
    the vendor late) share what is left of the limit's lateness allowance; all four phases
    together fit in the time left before the deadline."""
    lateness_left = limit.lateness_seconds - (now - slot_at)
    left = deadline - now
    if lateness_left < limit.lateness_seconds * LATENESS_KEPT or left < MIN_CALL_SECONDS / 2:
        return None
    before_wire = min(HTTP_TIMEOUT.connect or 3.0, lateness_left / 2, left / 4)
    on_wire = min(HTTP_TIMEOUT.read or 10.0, (left - 2 * before_wire) / 2)
    return httpx.Timeout(connect=before_wire, pool=before_wire, write=on_wire, read=on_wire)


def _waiting_for(ticket: Ticket) -> Deferred:
    """The records go back to the queue, to return just before their booked slot."""
    return Deferred(
        ticket.slot_at - BOOKED_LEAD_SECONDS,
        "quota: slot booked, waiting on the queue",
        busy=True,
        ticket=ticket,
    )


class VendorCaller:
    """Makes one planned call within the shared quota, or says when it can be made.

    ``deadline`` is when every call must have ended (the invocation's end, less the time the
    pipeline needs to settle the batch). ``book_ahead``: slots may be booked for records sent
    back to the queue (the pipeline carries the tickets); ``gathering_seconds``: the event
    source mapping's batching window, by which such records may come back late."""

    def __init__(
        self,
        http: httpx.Client,
        quota: QuotaGate,
        credentials: Credentials,
        *,
        deadline: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        gathering_seconds: float = 0.0,
        book_ahead: bool = False,
    ) -> None:
        self._http = http
        self.quota = quota
        self._credentials = credentials
        self._deadline = deadline
        self._clock = clock
        self._sleep = sleep
        self._credential_failures: dict[str, str] = {}
        self._pool = _call_threads()
        self.calls: list[CallStats] = []
        self.locks = 0  # vendor answers that locked an API
        self.waited = 0.0  # seconds this invocation spent waiting for slots, billed
        self._gathering = gathering_seconds
        self._book_ahead = book_ahead
        self._tickets: dict[str, list[float]] = {}  # slots booked earlier, brought back
        self.booked = 0  # slots booked for records sent back to wait on the queue
        self.tickets_used = 0

    def bring(self, ticket: Ticket) -> None:
        """A slot booked earlier, brought back by a record this invocation holds the claim of:
        the next call of its quota key uses it instead of reserving."""
        bisect.insort(self._tickets.setdefault(ticket.quota_key, []), ticket.slot_at)

    def usable_tickets(self, key: str, limit: Limit) -> list[float]:
        """The slots brought back for ``key`` that are not yet too late to use, earliest first."""
        usable_from = self._clock() - limit.lateness_seconds * (1 - LATENESS_KEPT)
        return [slot for slot in self._tickets.get(key, []) if slot >= usable_from]

    def _booked(self, key: str, limit: Limit, budget: float) -> Grant | Deferred | None:
        """The earliest slot brought back for ``key``, if it is still usable (not past the
        limit's lateness): spent (QuotaGate.spend: once for every Lambda, not while the API is
        locked) if this invocation can wait for it, else handed back to the records."""
        slots = self._tickets[key] = self.usable_tickets(key, limit)
        while slots:
            slot = slots.pop(0)
            if slot - self._clock() > budget:  # not spent: the records bring it back again
                return _waiting_for(Ticket(key, slot))
            if self.quota.spend(key, slot):
                return Grant(slot)
        return None

    def _books(self, limit: Limit) -> bool:
        """Whether records sent back for a slot can wait for it, when they are back, within the
        limit's ``max_wait_seconds`` (the batching window may have gathered them for that long)."""
        return self._book_ahead and (
            limit.max_wait_seconds >= BOOKED_LEAD_SECONDS + self._gathering
        )

    def call(
        self,
        account_name: str,
        account: Account,
        api: TriggerApi,
        params: Any,
        recipients: list[Any],
        *,
        repeat_safe: bool = True,
        wait: bool = True,
    ) -> CallResult | Deferred:
        """``repeat_safe``: the vendor deduplicates, or the route accepts a repeat; then a call
        the vendor may have acted on is retried like one it certainly did not.

        ``wait``: take a slot up to the limit's ``max_wait_seconds`` ahead and wait for it;
        without, only the next slot for the first request, at most one interval ahead (the
        call is deferred, ``busy``, when other callers are queued for slots before it).
        ``max_wait_seconds`` bounds the invocation's waiting in all: each call may wait only
        what earlier calls left of it, and never for a slot past the invocation's deadline.
        A waiting call whose slot is further ahead than that books it (up to the limit's
        ``booking_seconds``): it is deferred with a ticket for the slot, and its records come
        back to the queue just before it. A slot brought back for the key is used before
        reserving another, within the invocation's wait (a held call's too)."""
        key = quota_key(account_name, account, api)
        limit = account.limit(api.quota_api)
        base_url = api.base_url(account.data_centre, account.base_url) or ""
        codes = frozenset(account.lock_codes)
        refreshed = False
        attempt = late_slots = 0
        while True:
            if self._deadline - self._clock() < MIN_CALL_SECONDS:
                return Deferred(self._clock(), "no time left in this invocation")
            token = self._token(account_name, account)
            if isinstance(token, Deferred):
                return token
            if self._deadline - self._clock() < MIN_CALL_SECONDS:  # the token took it
                return Deferred(self._clock(), "no time left in this invocation")
            # What is left of the invocation's wait, and never a slot it could not use (that
            # slot would be lost to every caller). Without waiting, only the next slot, at most
            # one interval ahead; once a request went out, its repeat waits like any call.
            time_left = self._deadline - MIN_CALL_SECONDS - self._clock()
            budget = max(0.0, min(limit.max_wait_seconds - self.waited, time_left))
            books = bool(wait or attempt) and self._books(limit)
            wait_left = budget if wait or attempt else min(budget, limit.interval)
            # a slot booked earlier is this call's own: worth waiting for, held call or not
            brought = self._booked(key, limit, budget)
            if isinstance(brought, Deferred):
                return brought
            decision: Grant | Denial
            if brought is not None:
                decision = brought
            else:
                ahead = max(wait_left, limit.booking_seconds) if books else wait_left
                decision = self.quota.reserve(key, limit, ahead)
            if isinstance(decision, Denial):
                if decision.locked:
                    return Deferred(decision.retry_at, "vendor lock recorded")
                # back when a fresh invocation could wait for (or book) the slot: this one
                # may have had less than max_wait left, and coming back later would lose it
                back = decision.retry_at
                if not books:
                    back += wait_left - limit.max_wait_seconds
                return Deferred(max(back, self._clock()), "quota: no free slot", busy=True)
            if decision.slot_at + MIN_CALL_SECONDS > self._deadline and not books and not brought:
                return Deferred(
                    decision.slot_at, "quota: slot after this invocation's deadline", busy=True
                )
            if brought is None and (
                decision.slot_at - self._clock() > wait_left
                or decision.slot_at + MIN_CALL_SECONDS > self._deadline
            ):
                # further ahead than this invocation may wait: the slot stays booked, and the
                # records wait for it on the queue instead of in a billed Lambda
                self.booked += 1
                return _waiting_for(Ticket(key, decision.slot_at))
            self.tickets_used += brought is not None
            pause = max(0.0, decision.slot_at - self._clock())
            self.waited += pause
            self._sleep(pause)
            timeout = call_timeout(limit, decision.slot_at, self._clock(), self._deadline)
            if timeout is None:  # unused, a slot costs only throughput
                late_slots += 1
                logger.warning("slot came too late", extra={"quota_key": key})
                if late_slots >= LATE_SLOTS:
                    return Deferred(self._clock() + limit.interval, "quota: slots came too late")
                continue
            result = self._send(api, params, recipients, token, base_url, codes, timeout)
            attempt += 1
            if result.locked:
                seconds = limit.lock_seconds if result.retry_after is None else result.retry_after
                until = self.quota.record_lock(key, seconds)
                self.locks += 1
                logger.warning("vendor lock", extra={"quota_key": key, "locked_until": until})
                return Deferred(until, f"vendor locked the API ({result.vendor_code})")
            if result.token_invalid and not refreshed:
                self._credentials.invalidate(account_name, account)
                refreshed = True
                continue
            if repeat_safe:
                result = result.repeatable()
            transient = all(r.outcome is Outcome.RETRY for r in result.by_recipient.values())
            if (
                transient
                and attempt < TRANSIENT_ATTEMPTS
                and self._clock() + 0.2 * attempt + MIN_CALL_SECONDS < self._deadline
            ):
                self._sleep(0.2 * attempt)
                continue
            return result

    def _token(self, account_name: str, account: Account) -> str | Deferred:
        """The account's token, or a deferral when its credentials fail (once per invocation:
        the other calls of that account are deferred without asking again)."""
        failure = self._credential_failures.get(account_name)
        if failure is None:
            try:
                return self._credentials.token(account_name, account, self._deadline)
            except CredentialsError as exc:
                failure = f"credentials of account {account_name}: {exc}"
                self._credential_failures[account_name] = failure
                logger.warning("credentials unavailable", extra={"account": account_name})
        return Deferred(self._clock() + CREDENTIALS_RETRY_SECONDS, failure)

    def _within(self, request: httpx.Request, seconds: float) -> httpx.Response:
        """Send and read the whole answer within ``seconds``, whatever the server does: httpx's
        timeouts bound each socket operation, so a server dripping its answer a byte at a
        time would outlive them. Past the limit the call is abandoned (CallOutlived): its
        thread ends by its own timeouts, and the answer is never counted."""
        future = self._pool.submit(self._http.send, request)
        try:
            return future.result(timeout=max(0.0, seconds))
        except concurrent.futures.TimeoutError:
            if future.cancel():  # it never left the queue: nothing was sent, nor will be
                raise NotStartedInTime(f"no thread free within {seconds:.1f} s") from None
            raise CallOutlived(f"no complete answer within {seconds:.1f} s") from None

    def _send(
        self,
        api: TriggerApi,
        params: Any,
        recipients: list[Any],
        token: str,
        base_url: str,
        codes: frozenset[str],
        timeout: httpx.Timeout,
    ) -> CallResult:
        keys = [r.key for r in recipients]
        request = api.build(recipients, params, token=token, base_url=base_url)
        request.extensions["timeout"] = timeout.as_dict()
        started = self._clock()
        try:
            response = self._within(request, self._deadline - self._clock())
        except NOT_SENT as exc:
            result = CallResult.same_for_all(keys, Outcome.RETRY, f"not sent: {type(exc).__name__}")
        except Exception as exc:
            # a read timeout, a reset, an answer that would not decode, the deadline passing
            # mid-answer: the vendor may have acted on it
            result = CallResult.same_for_all(
                keys, Outcome.UNCERTAIN, f"no answer: {type(exc).__name__}; may have been acted on"
            )
        else:
            try:
                result = api.parse(response, recipients, codes)
            except Exception as exc:  # a parser bug must not count an answer as anything else
                logger.error(
                    "answer not parsed", extra={"api": api.action, "error": type(exc).__name__}
                )
                result = CallResult.same_for_all(
                    keys, Outcome.UNCERTAIN, f"answer could not be read: {type(exc).__name__}"
                )
        self.calls.append(CallStats(api.action, len(recipients), self._clock() - started))
        return result
