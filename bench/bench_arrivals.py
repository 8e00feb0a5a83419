"""Arrival patterns against three policies, on the local stack at Zoho's real limit.

One Zoho Marketing Automation journey, limited as Zoho documents it: 100 calls per 5 minutes,
then a 30-minute lock (Zoho Marketing Automation API, "Trigger leads into a journey"; the
simulator enforces the same, citing it in simulator/vendors/zoho.py). Time is not scaled.
Three arrival patterns:

* trickle: Poisson arrivals below the quota, even at one call per event;
* burst: thousands of events at once, far above what the quota carries at one call per event,
  and a minute and a half of full calls;
* trickle with bursts: the trickle, with two bursts in it.

and three policies, each on a fresh stack:

* one call per event: batch size 1, no batching window (EventBridge API Destinations' model);
* per-invocation batching: the template's event source settings, every planned call sent
  (``max_hold_seconds: 0``: what the relay did before coalescing);
* coalescing: the template's settings and the route's default hold.

Reported per pattern and policy: calls, recipients per call, locks, the most calls in any
5-minute window, time to drain against the quota-limited ideal (drain: from the first call to
the last plus one call's share of the window, i.e. how long the quota was in use; ideal: the
calls that N events need at 200 a call, at the limit's sustained rate, and no less than the
arrivals last; the wait before the first call is in the latency), p50/p95 event-to-vendor
latency (from the event's SendMessageBatch to the simulator receiving it), and billed
Lambda GB-seconds per 1,000 events (the local runtime adds up each invocation's duration,
rounded up to the millisecond, times the function's memory, as Lambda bills). A run that has
not drained within its time box is stopped and reported as such.

Targets (coalescing): under a burst >= 190 recipients per call and drain <= 1.05x the ideal;
in a trickle p50 latency <= the batching window + 1 s; for every policy 0 locks and at most
the limit in every window. Writes bench/arrivals.png: calls in the last 5 minutes, per
policy, against the limit.

Run: .venv/bin/python bench/bench_arrivals.py [--only burst] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from bench_quota import most_in_any_window  # noqa: E402
from report import Row, finish, print_table  # noqa: E402

from trigger_relay_local.lambda_runtime.emf import metric_totals  # noqa: E402
from trigger_relay_local.lambda_runtime.fleet import PollerFleet, queue_depth  # noqa: E402
from trigger_relay_local.simulator import SimConfig  # noqa: E402
from trigger_relay_local.stack.embedded import embedded_stack  # noqa: E402
from trigger_relay_local.stack.local_stack import ROUTES, LocalStack  # noqa: E402
from trigger_relay_local.stack.template import load_template  # noqa: E402

API = "zoho_marketing_automation.journey_trigger"
ROUTE = "order-journey"
# Zoho Marketing Automation: 100 calls per 5 minutes, then locked for 30 minutes.
CALLS, WINDOW, LOCK = 100, 300.0, 1800.0
PER_CALL = 200  # Zoho: at most 200 leads per call
CHART = Path(__file__).parent / "arrivals.png"
TIMELINE = False  # --timeline: print each run's calls


@dataclass(frozen=True)
class Policy:
    name: str
    parameters: dict[str, str]
    max_hold_seconds: float


def template_default(name: str) -> str:
    return str(load_template()["Parameters"][name]["Default"])


POLICIES = [
    Policy(
        "one call per event",
        {"TriggerBatchSize": "1", "TriggerBatchingWindowSeconds": "0"},
        0,
    ),
    Policy("per-invocation batching", {}, 0),
    Policy("coalescing", {}, 60),
]


@dataclass(frozen=True)
class Pattern:
    name: str
    arrivals: list[float]  # seconds after the start at which each event is sent
    time_box: float  # a run that has not drained by then is stopped


def trickle(rate: float, seconds: float, rng: random.Random, start: float = 0.0) -> list[float]:
    times, t = [], start
    while True:
        t += rng.expovariate(rate)
        if t >= start + seconds:
            return times
        times.append(t)


def patterns(quick: bool) -> list[Pattern]:
    """The trickle stays below the quota even at one call per event (0.25 events/s against
    100 calls / 300 s); the bursts are each 10 to 30 windows' worth of single calls."""
    rng = random.Random(17)
    scale = 0.5 if quick else 1.0
    burst = int(6000 * scale)
    ideal = math.ceil(burst / PER_CALL) * WINDOW / CALLS
    mixed_seconds, mixed_burst = 120 * scale, int(2000 * scale)
    mixed = sorted(
        trickle(0.25, mixed_seconds, rng)
        + [20.0 * scale] * mixed_burst
        + [70.0 * scale] * mixed_burst
    )
    hold = 60.0  # a record held to its route's limit still counts as drained
    return [
        Pattern("trickle", trickle(0.25, 160 * scale, rng), 160 * scale + hold + 30),
        Pattern("burst", [0.0] * burst, ideal * 1.5 + 20),
        Pattern("trickle with bursts", mixed, mixed_seconds * 1.5 + hold + 30),
    ]


@dataclass
class Run:
    pattern: str
    policy: str
    events: int
    sent_at: dict[str, float] = field(default_factory=dict)  # email -> when it was sent
    calls: list[tuple[float, list[str]]] = field(default_factory=list)  # accepted calls
    refused: int = 0
    locks: int = 0
    drained: bool = False
    gb_seconds: float = 0.0
    quota_requests: float = 0.0  # DynamoDB requests of the shared quota, all invocations
    start: float = 0.0

    @property
    def delivered(self) -> list[str]:
        return [email for _, emails in self.calls for email in emails]

    def latencies(self) -> list[float]:
        first: dict[str, float] = {}
        for at, emails in self.calls:
            for email in emails:
                first.setdefault(email, at)
        return sorted(first[e] - self.sent_at[e] for e in first)

    def drain_seconds(self) -> float:
        """How long the quota was in use: first call to last, plus the last call's share of
        the window. The wait before the first call (the batching window) is in the latency."""
        times = [at for at, _ in self.calls]
        return max(times) - min(times) + WINDOW / CALLS if times else math.inf

    def ideal_seconds(self, arrivals: list[float]) -> float:
        """The quota-limited ideal: the events in full calls at the limit's sustained rate,
        each call taking window / limit, and no shorter than the arrivals last."""
        quota = math.ceil(self.events / PER_CALL) * WINDOW / CALLS
        return max(quota, max(arrivals) - min(arrivals) + WINDOW / CALLS)


def routes_file(directory: Path, max_hold: float) -> Path:
    document = yaml.safe_load(ROUTES.read_text(encoding="utf-8"))
    document["accounts"]["zoho-main"]["limits"] = {
        API: {"calls": CALLS, "window_seconds": WINDOW, "lock_seconds": LOCK}
    }
    document["routes"] = [r for r in document["routes"] if r["name"] == ROUTE]
    document["routes"][0]["max_hold_seconds"] = max_hold
    path = directory / f"routes.hold-{max_hold:g}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def order(n: int, tag: str) -> tuple[str, str]:
    email = f"{tag}{n}@example.com"
    body = {"type": "order.placed", "id": f"{tag}-{n}", "customer": {"email": email}}
    return email, json.dumps(body)


def send_arrivals(
    stack: LocalStack, arrivals: list[float], run: Run, tag: str, first: int = 0
) -> None:
    """Send each event at its time after run.start; events due together go ten a request."""
    sqs = stack.client("sqs")
    queue = stack.outputs["IngestQueueUrl"]
    pending = [order(first + n, tag) for n in range(len(arrivals))]
    index = 0
    while index < len(arrivals):
        time.sleep(max(0.0, run.start + arrivals[index] - time.time()))
        now = time.time()
        batch = []
        while index < len(arrivals) and len(batch) < 10 and run.start + arrivals[index] <= now:
            batch.append(pending[index])
            index += 1
        for email, _ in batch:
            run.sent_at[email] = now
        sqs.send_message_batch(
            QueueUrl=queue,
            Entries=[{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)],
        )


def run_one(pattern: Pattern, policy: Policy, workdir: Path) -> Run:
    config = SimConfig.demo()
    config.limits[API] = (CALLS, WINDOW, LOCK)
    run = Run(pattern.name, policy.name, len(pattern.arrivals))
    tag = f"{pattern.name[:1]}{POLICIES.index(policy)}x"
    with embedded_stack(
        workdir / "stack",
        config,
        parameters=policy.parameters,
        routes_source=routes_file(workdir, policy.max_hold_seconds),
    ) as env:
        stack = env.stack
        # A burst at 0 is on the queue when the functions start, as the event source mapping
        # would find it: moto takes seconds to take thousands of messages, and pollers
        # gathering during that would see a trickle, not the burst.
        run.start = time.time()
        at_once = sum(1 for t in pattern.arrivals if t == 0.0)
        if at_once:
            send_arrivals(stack, pattern.arrivals[:at_once], run, tag)
        fleet = PollerFleet(stack, stack.functions["TriggerFunction"]).start()
        sender = threading.Thread(
            target=send_arrivals,
            args=(stack, pattern.arrivals[at_once:], run, tag, at_once),
            daemon=True,
        )
        sender.start()
        queue = stack.outputs["IngestQueueUrl"]
        empty_since = None
        while time.time() - run.start < pattern.time_box:
            time.sleep(1.0)
            if sender.is_alive() or queue_depth(stack, queue):
                empty_since = None
                continue
            empty_since = empty_since or time.time()
            if time.time() - empty_since >= 2.0:
                run.drained = True
                break
        totals = fleet.stop(timeout=30)
        for received in env.simulator.received(API):
            if received.answer_code != "200":
                run.refused += 1
                continue
            details = json.loads(received.query["details"])
            run.calls.append((received.at, details["lead_email"].split(",")))
        if TIMELINE:
            print(
                "  calls (s after start: recipients):",
                ", ".join(f"{at - run.start:.1f}: {len(emails)}" for at, emails in run.calls),
            )
        run.locks = env.simulator.state.limits[API].locks
        run.gb_seconds = totals.get("billed_mb_ms", 0) / 1024 / 1000
        run.quota_requests = metric_totals(stack.workdir / "logs").get("QuotaRequests", 0)
    return run


def rows_for(run: Run, arrivals: list[float], window: float, coalescing: bool) -> list[Row]:
    delivered = run.delivered
    latencies = run.latencies()
    recipients_per_call = len(delivered) / max(1, len(run.calls))
    drain = run.drain_seconds()
    ideal = run.ideal_seconds(arrivals)
    name = f"{run.pattern} / {run.policy}"
    rows = [
        Row(f"{name}: events sent / delivered", f"{run.events} / {len(set(delivered))}"),
        Row(f"{name}: delivered twice", len(delivered) - len(set(delivered)), "== 0"),
        Row(f"{name}: calls", len(run.calls)),
        Row(f"{name}: calls refused by the vendor", run.refused, "== 0"),
        Row(f"{name}: locks", run.locks, "== 0"),
        Row(
            f"{name}: most calls in any {WINDOW:.0f} s",
            most_in_any_window([at for at, _ in run.calls], WINDOW),
            f"<= {CALLS}",
        ),
        Row(
            f"{name}: recipients per call",
            round(recipients_per_call, 1),
            ">= 190" if coalescing and run.pattern == "burst" else "",
        ),
        Row(
            f"{name}: drain / ideal ({ideal:.0f} s)"
            + ("" if run.drained else ", NOT DRAINED in the time box"),
            round(drain / ideal, 3) if run.drained else math.inf,
            "<= 1.05" if coalescing and run.pattern == "burst" else "",
        ),
        Row(
            f"{name}: latency p50 s",
            round(statistics.median(latencies), 2) if latencies else "-",
            f"<= {window + 1:g}" if coalescing and run.pattern == "trickle" else "",
        ),
        Row(
            f"{name}: latency p95 s",
            round(latencies[int(0.95 * (len(latencies) - 1))], 2) if latencies else "-",
        ),
        Row(
            f"{name}: billed GB-s per 1000 events",
            round(run.gb_seconds * 1000 / max(1, len(set(delivered))), 3),
        ),
        Row(
            f"{name}: DynamoDB quota requests per call",
            round(run.quota_requests / max(1, len(run.calls)), 2),
        ),
    ]
    return rows


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pattern_names = list(dict.fromkeys(r.pattern for r in runs))
    figure, axes = plt.subplots(
        1, len(pattern_names), figsize=(5 * len(pattern_names), 3.6), squeeze=False
    )
    for axis, pattern_name in zip(axes[0], pattern_names, strict=True):
        for run in (r for r in runs if r.pattern == pattern_name):
            times = sorted(at - run.start for at, _ in run.calls)
            if not times:
                continue
            grid = [i * 2.0 for i in range(int(max(times) / 2.0) + 2)]
            in_window = [sum(1 for t in times if g - WINDOW < t <= g) for g in grid]
            axis.plot(grid, in_window, label=run.policy)
        axis.axhline(CALLS, color="red", linestyle="--", linewidth=1, label=f"limit ({CALLS})")
        axis.set_title(pattern_name)
        axis.set_xlabel("seconds")
        axis.set_ylabel(f"calls in the last {WINDOW:.0f} s")
        axis.set_ylim(0, CALLS * 1.15)
    axes[0][0].legend(fontsize=7, loc="lower right")
    figure.suptitle("Zoho Marketing Automation journey, 100 calls / 5 min: calls per window")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["trickle", "burst", "trickle with bursts"])
    parser.add_argument("--quick", action="store_true", help="half-size patterns")
    parser.add_argument("--policy", choices=[p.name for p in POLICIES], action="append")
    parser.add_argument("--timeline", action="store_true", help="print each run's calls")
    args = parser.parse_args()
    global TIMELINE
    TIMELINE = args.timeline
    window = float(template_default("TriggerBatchingWindowSeconds"))
    runs: list[Run] = []
    rows: list[Row] = []
    for pattern in patterns(args.quick):
        if args.only and pattern.name != args.only:
            continue
        for policy in POLICIES:
            if args.policy and policy.name not in args.policy:
                continue
            print(f"{pattern.name} / {policy.name}: {len(pattern.arrivals)} events", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                run = run_one(pattern, policy, Path(tmp))
            runs.append(run)
            rows += rows_for(run, pattern.arrivals, window, policy.name == "coalescing")
    chart(runs, CHART)
    print(f"chart: {CHART}")
    finish(print_table("Arrival patterns x policies (Zoho MA journey, 100 calls / 5 min)", rows))


if __name__ == "__main__":
    main()
