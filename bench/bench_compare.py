"""Trigger Relay side by side with the designs users otherwise pick, on one simulator, one run.

(a) one vendor call per event, as an EventBridge API Destination or a webhook relay makes them
    (retrying a refused call with backoff);
(b) Trigger Relay's pipeline with a fixed calendar-window counter instead of its limiter;
(c) Trigger Relay: batching plus the shared GCRA schedule.

Scaled clock: the simulator allows 40 calls per 10 s sliding window and then locks the API for
20 s. Traffic: bursts of signups (12,000 at t=9 s, just before a calendar boundary; 6,000 at
t=35 s), 60 s per design. Targets for (c): no lock; >= 195 recipients per call under the
backlog; >= 95% of the quota used while there is a backlog; <= 1.1 DynamoDB requests per call.
Writes bench/compare.png: calls in the trailing window over time against the limit.

Run: .venv/bin/python bench/bench_compare.py
"""

from __future__ import annotations

import heapq
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from moto import mock_aws

sys.path[:0] = [str(Path(__file__).parent)]
from report import Row, finish, print_table  # noqa: E402

from trigger_relay.pipeline.planning import Delivery, plan_calls  # noqa: E402
from trigger_relay.pipeline.routes import parse_routes  # noqa: E402
from trigger_relay.pipeline.vendor_calls import Deferred, VendorCaller  # noqa: E402
from trigger_relay.stores.credentials import Credentials, MintedTokens  # noqa: E402
from trigger_relay.stores.quota import Denial, Grant, Limit, QuotaGate  # noqa: E402
from trigger_relay.vendors.outcomes import Outcome  # noqa: E402
from trigger_relay_local.simulator import SimConfig, Simulator  # noqa: E402
from trigger_relay_local.simulator.state import Flow, MailingList  # noqa: E402

API = "zoho_campaigns.workflow_trigger"
CALLS, WINDOW, LOCK, MARGIN = 40, 10.0, 20.0, 0.1
RUN_SECONDS = float(__import__("os").environ.get("BENCH_RUN_SECONDS", "60"))
BURSTS = [(9.0, 12000), (35.0, 6000)]
WORKFLOW, TRIGGER, LIST = "wfbench", "tkbench", "lkbench"
ROUTES_YAML = f"""
accounts:
  zoho: {{vendor: zoho, secret: s, base_url: BASE, limits: {{{API}: {{calls: {CALLS},
          window_seconds: {WINDOW}, lock_seconds: {LOCK}, safety_margin_seconds: {MARGIN}}}}}}}
routes:
  - name: signup
    match: {{type: user.signed_up}}
    action: {API}
    account: zoho
    params: {{workflow_key: {WORKFLOW}, trigger_key: {TRIGGER}, list_key: {LIST}}}
    mapping: {{email: user.email}}
"""


@dataclass
class Result:
    name: str
    events: int = 0
    delivered: int = 0
    accepted_calls: int = 0
    refused_calls: int = 0
    recipients_sent: int = 0
    dynamodb_requests: int = 0
    locks: int = 0
    call_times: list[float] = field(default_factory=list)  # accepted calls, s since the start
    all_call_times: list[float] = field(default_factory=list)  # every call, refused ones too


class FixedWindowGate:
    """The usual counter: at most `calls` per calendar window, one conditional ADD per call."""

    def __init__(self, table: str, client: Any) -> None:
        self._table, self._client, self.requests = table, client, 0

    def reserve(self, key: str, limit: Limit) -> Grant | Denial:
        now = time.time()
        window = int(now // limit.window_seconds)
        self.requests += 1
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"{key}#{window}"}},
                UpdateExpression="ADD used :one",
                ConditionExpression="attribute_not_exists(used) OR used < :max",
                ExpressionAttributeValues={":one": {"N": "1"}, ":max": {"N": str(limit.calls)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return Denial((window + 1) * limit.window_seconds, locked=False)
        return Grant(now)

    def record_lock(self, key: str, seconds: float) -> float:
        return time.time() + seconds


def aligned_start() -> float:
    """Start so that the first burst lands 0.5 s before a calendar window boundary, as traffic
    sometimes does: the case a fixed window gets wrong."""
    now = time.time()
    first = BURSTS[0][0]
    boundary = (now + first) // WINDOW * WINDOW + WINDOW
    start = boundary - 0.5 - first
    if start < now:
        start += WINDOW
    time.sleep(start - now)
    return start


def backlog_utilisation(times: list[float], interval: float) -> float:
    """Accepted calls over what the limit allowed while calls followed each other (a backlog)."""
    times = sorted(times)
    allowed, begin = 0.0, times[0]
    for previous, current in zip(times, [*times[1:], None], strict=True):
        if current is None or current - previous > 2 * interval:
            allowed += (previous - begin) / WINDOW * CALLS + 1
            if current is not None:
                begin = current
    return len(times) / allowed


def simulator_config() -> SimConfig:
    config = SimConfig()
    config.lists[LIST] = MailingList("bench")
    config.workflows[WORKFLOW] = Flow(TRIGGER, LIST)
    config.limits[API] = (CALLS, WINDOW, LOCK)
    return config


def arrivals() -> list[tuple[float, int]]:
    out, n = [], 0
    for at, count in BURSTS:
        out += [(at, n + i) for i in range(count)]
        n += count
    return out


def run_pipeline(name: str, sim: Simulator, gate_kind: str, dynamodb: Any) -> Result:
    routes = parse_routes(ROUTES_YAML.replace("BASE", sim.url))
    route = routes.routes[0]
    config = sim.state.config
    secret = {
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "refresh_token": config.refresh_token,
    }
    http = httpx.Client(timeout=10)
    tokens = MintedTokens(http, secrets=lambda _: secret)
    table = f"quota-{gate_kind}"
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    gate = QuotaGate(table, dynamodb) if gate_kind == "gcra" else FixedWindowGate(table, dynamodb)
    result = Result(name)
    pending = arrivals()
    result.events = len(pending)
    backlog: list[tuple[float, int]] = []  # (not before, event number)
    start = aligned_start()
    while time.time() - start < RUN_SECONDS:
        now = time.time() - start
        while pending and pending[0][0] <= now:
            heapq.heappush(backlog, (0.0, pending.pop(0)[1]))
        ready = []
        while backlog and backlog[0][0] <= now and len(ready) < 1000:  # one Lambda batch
            ready.append(heapq.heappop(backlog))
        if not ready:
            time.sleep(0.05)
            continue
        deliveries = [
            Delivery(str(n), str(n), route, route.recipient_model_for(n)) for _, n in ready
        ]
        caller = VendorCaller(http, gate, Credentials(tokens), deadline=time.time() + 5)  # type: ignore[arg-type]
        for call in plan_calls(deliveries):
            outcome = caller.call(
                "zoho", routes.accounts["zoho"], route.api, route.typed_params, call.recipients
            )
            numbers = [int(d[0].record_id) for d in call.deliveries.values()]
            if isinstance(outcome, Deferred):
                for number in numbers:
                    heapq.heappush(backlog, (outcome.retry_at - start, number))
                continue
            delivered = [
                k for k, r in outcome.by_recipient.items() if r.outcome is Outcome.DELIVERED
            ]
            result.delivered += len(delivered)
            for number, (key, _) in zip(numbers, call.deliveries.items(), strict=True):
                if outcome.by_recipient[key].outcome is not Outcome.DELIVERED:
                    heapq.heappush(backlog, (time.time() - start + 1, number))
    result.dynamodb_requests = gate.requests
    return collect(result, sim, start)


def run_per_event(sim: Simulator) -> Result:
    """One call per event as soon as it arrives; a refused call is retried with backoff."""
    token = sim.access_token()
    http = httpx.Client(base_url=sim.url, headers={"Authorization": f"Zoho-oauthtoken {token}"})
    result = Result("(a) one call per event")
    pending = arrivals()
    result.events = len(pending)
    backlog: list[tuple[float, int, int]] = []  # (not before, event, attempt)
    start = aligned_start()
    while time.time() - start < RUN_SECONDS:
        now = time.time() - start
        while pending and pending[0][0] <= now:
            heapq.heappush(backlog, (0.0, pending.pop(0)[1], 0))
        if not backlog or backlog[0][0] > now:
            time.sleep(0.01)
            continue
        _, number, attempt = heapq.heappop(backlog)
        details = json.dumps(
            {"lead_email": f"user{number}@example.com", "triggerkey": TRIGGER, "listkey": LIST}
        )
        answer = http.post(
            f"/api/v1.1/workflow/{WORKFLOW}/action/trigger", params={"details": details}
        ).json()
        if answer.get("code") == "200":
            result.delivered += 1
        else:
            heapq.heappush(backlog, (now + min(60, 2**attempt), number, attempt + 1))
    return collect(result, sim, start)


def collect(result: Result, sim: Simulator, start: float) -> Result:
    received = [r for r in sim.received(API)]
    result.accepted_calls = sum(r.answer_code == "200" for r in received)
    result.refused_calls = len(received) - result.accepted_calls
    result.recipients_sent = sum(
        len(json.loads(r.query["details"])["lead_email"].split(","))
        for r in received
        if r.answer_code == "200"
    )
    result.call_times = [r.at - start for r in received if r.answer_code == "200"]
    result.all_call_times = [r.at - start for r in received]
    result.locks = sim.state.limits[API].locks
    return result


def draw(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4.5))
    samples = [i / 4 for i in range(int(RUN_SECONDS * 4))]
    for result in results:
        trailing = [sum(1 for t in result.all_call_times if s - WINDOW < t <= s) for s in samples]
        axis.plot(samples, trailing, label=f"{result.name} ({result.locks} lock(s))")
    axis.axhline(
        CALLS, color="black", linestyle="--", label=f"vendor limit: {CALLS} calls / {WINDOW:.0f} s"
    )
    for at, count in BURSTS:
        axis.axvline(at, color="grey", alpha=0.3)
        axis.text(at, CALLS * 0.05, f" +{count:,} events", color="grey", fontsize=8)
    axis.set_xlabel("seconds")
    axis.set_ylabel(f"calls in the last {WINDOW:.0f} s")
    axis.set_ylim(0, CALLS * 2.2)
    axis.set_title("Vendor calls per window against the limit (scaled clock)")
    axis.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    # the bench's own recipient factory (a route's recipient model from an event number)
    from trigger_relay.pipeline.routes import Route

    Route.recipient_model_for = lambda self, n: self.api.recipient_model(
        email=f"user{n}@example.com"
    )  # type: ignore[attr-defined]
    results = []
    with Simulator(simulator_config()) as sim, mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        for name, runner in (
            ("(a) one call per event", lambda: run_per_event(sim)),
            (
                "(b) fixed calendar window",
                lambda: run_pipeline("(b) fixed calendar window", sim, "fixed", dynamodb),
            ),
            ("(c) Trigger Relay", lambda: run_pipeline("(c) Trigger Relay", sim, "gcra", dynamodb)),
        ):
            print(f"running {name} for {RUN_SECONDS:.0f} s ...", flush=True)
            httpx.post(f"{sim.url}/_sim/reset")
            results.append(runner())
    chart = Path(__file__).parent / "compare.png"
    draw(results, chart)

    rows: list[Row] = []
    for r in results:
        calls = r.accepted_calls + r.refused_calls
        tag = r.name.split(")")[0] + ")"
        ours = r.name.startswith("(c)")
        rows += [
            Row(f"{tag} vendor calls per 10,000 events", round(calls / r.events * 10_000)),
            Row(
                f"{tag} recipients per accepted call",
                round(r.recipients_sent / max(1, r.accepted_calls), 1),
                ">= 195" if ours else "",
            ),
            Row(f"{tag} lockouts", r.locks, "== 0" if ours else ""),
            Row(f"{tag} events delivered per minute", round(r.delivered / (RUN_SECONDS / 60))),
            Row(
                f"{tag} quota used (accepted calls / limit over the run)",
                round(r.accepted_calls / (RUN_SECONDS / WINDOW * CALLS), 3),
            ),
            Row(
                f"{tag} DynamoDB requests per call",
                round(r.dynamodb_requests / max(1, calls), 3),
                "<= 1.1" if ours else "",
            ),
        ]
    interval = Limit(calls=CALLS, window_seconds=WINDOW, safety_margin_seconds=MARGIN).interval
    rows.append(
        Row(
            "(c) quota used while a backlog waited",
            round(backlog_utilisation(results[-1].call_times, interval), 3),
            ">= 0.95",
        )
    )
    print(f"chart: {chart}")
    finish(
        print_table("Side by side: calls, batching, locks (scaled clock: 40 calls / 10 s)", rows)
    )


if __name__ == "__main__":
    main()
