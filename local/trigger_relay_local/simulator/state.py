"""What the simulated vendors know: accounts, workflows, journeys, lists, campaigns, limits."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trigger_relay_local.simulator.limits import CallLimit

Answer = tuple[int, str, bytes]  # status, content type, body
# (methods "GET|POST", path pattern, the API's name, handler(state, match, query, uri, request))
Route = tuple[str, "re.Pattern[str]", str, Callable[..., Answer]]


@dataclass
class Flow:
    """A Zoho Campaigns custom workflow or a Marketing Automation journey."""

    trigger_key: str
    list_key: str
    active: bool = True
    triggered: set[str] = field(default_factory=set)


@dataclass
class MailingList:
    name: str
    contacts: set[str] | None = None  # None: every address is a contact
    opted_out: set[str] = field(default_factory=set)

    def has(self, email: str) -> bool:
        email = email.lower()
        if email in self.opted_out:
            return False
        return self.contacts is None or email in self.contacts


@dataclass
class Campaign:
    """Recipients are generated from their index, so a million of them cost no memory."""

    recipients: dict[str, int]  # action -> how many
    error_code: str | None = None  # 6601, 6607, 6303 or 6002 answered for every page


@dataclass
class SimConfig:
    client_id: str = "1000.LOCALCLIENT"
    client_secret: str = "local-client-secret"  # noqa: S105 - the simulator's own fake
    refresh_token: str = "1000.local-refresh-token"  # noqa: S105
    token_ttl_seconds: float = 3600
    tokens_per_refresh_window: int = 10  # Zoho: 10 access tokens per refresh token
    refresh_window_seconds: float = 600  # per 10 minutes
    workflows: dict[str, Flow] = field(default_factory=dict)
    journeys: dict[str, Flow] = field(default_factory=dict)
    lists: dict[str, MailingList] = field(default_factory=dict)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    altcraft_token: str = "local-altcraft-token"  # noqa: S105 - the simulator's own fake
    altcraft_triggers: set[str] = field(default_factory=set)  # trigger campaign ids
    altcraft_links: set[str] = field(default_factory=set)  # the base16 values of v1.0 links
    # (calls, window seconds, lock seconds) per API: each simulated vendor's documented LIMITS
    limits: dict[str, tuple[int, float, float]] = field(default_factory=lambda: _documented())

    @classmethod
    def demo(cls) -> SimConfig:
        """The keys of the example routes file (layers/common/routes.yaml)."""
        config = cls()
        config.lists["9bb77af841821fa7d765f293a8830994"] = MailingList("list3")
        config.lists["3a1e7c2f9b8d4e6f8899aabbccddeeff"] = MailingList("customers")
        config.workflows["9bb77af841821fa7767e402a0f250219"] = Flow(
            "9bb77af841821fa704a13363331fd551", "9bb77af841821fa7d765f293a8830994"
        )
        config.journeys["3a1e7c2f9b8d4e6fa0c1d2e3f4a5b6c7"] = Flow(
            "3a1e7c2f9b8d4e6f11223344556677aa", "3a1e7c2f9b8d4e6f8899aabbccddeeff"
        )
        config.altcraft_triggers |= {"8", "84", "85", "96"}
        config.altcraft_links.add("465ea6fedf0a75fa9ee0b5fb8f9d5fe89af34054909af8bb")
        config.campaigns["3a1e7c2f9b8d4e6f0000000000000001"] = Campaign(
            {"sentcontacts": 450, "openedcontacts": 120, "clickedcontacts": 30}
        )
        return config


def _documented() -> dict[str, tuple[int, float, float]]:
    from trigger_relay_local.simulator.vendors import SIMULATED  # they import this module

    return {api: limit for module in SIMULATED.values() for api, limit in module.LIMITS.items()}


def learn_routes(config: SimConfig, document: dict[str, Any]) -> None:
    """Make the simulated vendors know every key a routes file uses, so any routes file runs
    locally; keys the config already has keep their settings. Each vendor's module learns the
    routes of its own APIs."""
    from trigger_relay_local.simulator.vendors import VENDOR_OF

    for route in document.get("routes", []):
        action = route.get("action", "")
        if action in VENDOR_OF:
            VENDOR_OF[action].learn(config, action, route.get("params", {}))
    sync = document.get("recipients_sync") or {}
    for campaign in sync.get("campaigns", []):
        config.campaigns.setdefault(campaign, Campaign({"sentcontacts": 250, "openedcontacts": 80}))


@dataclass
class Received:
    """One request as the simulator received it."""

    api: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    answer_code: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "at": self.at,
            "answer_code": self.answer_code,
        }


# Fault modes, each a failure real vendors and the networks in front of them produce:
FAULT_MODES = {
    # the vendor acts on the request, then the answer comes too late for the client (a read
    # timeout after the request was processed: the case a retry turns into a duplicate)
    "accept_then_timeout",
    # the vendor acts on the request, then the connection is reset before the answer (a load
    # balancer's idle timeout, a deploy restarting the vendor's front end)
    "accept_then_reset",
    # 301 to https on the same host: a tracking domain that moved to TLS. RFC 9110 section
    # 15.4.2; httpx does not follow redirects unless asked, so nothing was triggered
    "redirect",
    # a load balancer's HTML "502 Bad Gateway" page instead of the vendor's answer (AWS ALB,
    # nginx): the vendor may or may not have seen the request
    "html_502",
    # 414 URI Too Long (RFC 9110 section 15.5.15): a front end refusing a long query string,
    # as Zoho's trigger APIs carry up to 200 emails in one
    "uri_too_long",
    # 429 Too Many Requests with Retry-After (RFC 6585 section 4, RFC 9110 section 10.2.3)
    "rate_limited",
    # the access token was revoked (Zoho: INVALID_TOKEN; Altcraft: 403 "Invalid API token")
    "token_refused",
    # Zoho's accounts server refuses to mint: "You have made too many requests continuously"
    # (10 access tokens per refresh token per 10 minutes)
    "mint_refused",
}


@dataclass
class Faults:
    """Switches for failure tests: applied to the next `times` vendor API calls."""

    status: int | None = None  # answer with this HTTP status
    delay_seconds: float = 0.0  # answer this late
    lock: bool = False  # answer with the lock code
    drop: bool = False  # close the connection without an answer
    mode: str | None = None  # one of FAULT_MODES
    retry_after: int = 5  # seconds, for rate_limited
    times: int = 0

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; known: {sorted(FAULT_MODES)}")


class SimState:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.mutex = threading.Lock()
        self.received: list[Received] = []
        self.tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self.token_mints: list[float] = []
        self.faults = Faults()
        self.altcraft_launched: list[tuple[str, str]] = []  # (trigger, profile identifier)
        self.zoho_triggered_new: list[tuple[str, str]] = []  # (trigger key, email) new to a flow
        self.limits = {
            api: CallLimit(calls, window, lock)
            for api, (calls, window, lock) in config.limits.items()
        }

    def record(self, received: Received) -> None:
        with self.mutex:
            self.received.append(received)

    def mint_token(self) -> str | None:
        now = time.monotonic()
        with self.mutex:
            window = self.config.refresh_window_seconds
            self.token_mints = [t for t in self.token_mints if t > now - window]
            if len(self.token_mints) >= self.config.tokens_per_refresh_window:
                return None
            self.token_mints.append(now)
            token = f"1000.{secrets.token_hex(16)}"
            self.tokens[token] = now + self.config.token_ttl_seconds
            return token

    def token_valid(self, authorization: str, wanted_scheme: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        expiry = self.tokens.get(token.strip())
        return scheme == wanted_scheme and expiry is not None and expiry > time.monotonic()

    def take_fault(self, api: str) -> Faults | None:
        with self.mutex:
            if self.faults.times <= 0:
                return None
            # the token endpoints have one fault of their own; the vendor APIs have the rest
            if api.endswith(".oauth") != (self.faults.mode == "mint_refused"):
                return None
            self.faults.times -= 1
            return Faults(**{**self.faults.__dict__})
