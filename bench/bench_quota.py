"""Shared quota under load, on the local stack with a scaled-down clock.

Several TriggerFunction pollers (processes) drain a backlog of signups into one Zoho workflow,
one event per call. The simulator enforces 100 calls / 10 s with a 20 s lock; the limiter runs
with the same numbers and a 0.2 s safety margin. Targets: the simulator never locks, the calls
use >= 95% of the limit, and every event is delivered exactly once.

Run: .venv/bin/python bench/bench_quota.py [--events 800] [--pollers 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from report import Row, finish, print_table  # noqa: E402

from tests.helpers.events import signups  # noqa: E402
from trigger_relay_local.lambda_runtime.emf import metric_totals  # noqa: E402
from trigger_relay_local.lambda_runtime.fleet import (  # noqa: E402
    PollerFleet,
    enqueue,
    queue_depth,
    wait_drained,
)
from trigger_relay_local.simulator import SimConfig  # noqa: E402
from trigger_relay_local.stack.embedded import embedded_stack  # noqa: E402
from trigger_relay_local.stack.local_stack import write_routes  # noqa: E402

API = "zoho_campaigns.workflow_trigger"
CALLS, WINDOW, LOCK, MARGIN = 100, 10.0, 20.0, 0.2


def scaled_routes(directory: Path) -> Path:
    limit = {
        "calls": CALLS,
        "window_seconds": WINDOW,
        "lock_seconds": LOCK,
        "safety_margin_seconds": MARGIN,
        "max_wait_seconds": 5,
    }
    return write_routes(directory / "routes.bench.yaml", limits={"zoho-main": {API: limit}})


def most_in_any_window(times: list[float], window: float) -> int:
    times, most, start = sorted(times), 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=800)
    parser.add_argument("--pollers", type=int, default=6)
    args = parser.parse_args()

    config = SimConfig.demo()
    config.limits[API] = (CALLS, WINDOW, LOCK)
    with (
        tempfile.TemporaryDirectory() as tmp,
        embedded_stack(
            Path(tmp) / "stack",
            config,
            parameters={
                "TriggerBatchSize": "1",
                "TriggerBatchingWindowSeconds": "0",
                "TriggerMaxConcurrency": str(args.pollers),
            },
            routes_source=scaled_routes(Path(tmp)),
        ) as env,
    ):
        stack = env.stack
        queue = stack.outputs["IngestQueueUrl"]
        enqueue(stack, signups("user", args.events))
        began = time.monotonic()
        fleet = PollerFleet(stack, stack.functions["TriggerFunction"]).start()
        drained = wait_drained(stack, queue, timeout=args.events / (CALLS / WINDOW) * 2 + 60)
        elapsed = time.monotonic() - began
        poller = fleet.stop()

        calls = [r for r in env.simulator.received(API) if r.answer_code == "200"]
        refused = [r for r in env.simulator.received(API) if r.answer_code != "200"]
        times = [r.at for r in calls]
        limit_stats = env.simulator.state.limits[API]
        triggered = len(next(iter(config.workflows.values())).triggered)
        busy = max(times) - min(times) if len(times) > 1 else 0.0
        # Calls a perfect client could make in the same busy period: the limit per window.
        possible = busy * CALLS / WINDOW + 1
        metrics = metric_totals(stack.workdir / "logs")
        dlq = queue_depth(stack, stack.outputs["IngestDeadLetterQueueUrl"])

    rows = [
        Row("events sent", args.events),
        Row("pollers (concurrent processes)", min(args.pollers, poller and args.pollers)),
        Row("vendor calls accepted", len(calls)),
        Row("vendor calls refused (lock/limit)", len(refused), "== 0"),
        Row("simulator locks", limit_stats.locks, "== 0"),
        Row(
            f"most calls in any {WINDOW:.0f} s window (limit {CALLS})",
            most_in_any_window(times, WINDOW),
            f"<= {CALLS}",
        ),
        Row("quota utilisation (calls / possible)", len(calls) / possible, ">= 0.95"),
        Row("events delivered (distinct triggered)", triggered, f"== {args.events}"),
        Row(
            "DynamoDB quota requests per vendor call",
            metrics["QuotaRequests"] / max(1, metrics["VendorCalls"]),
            "<= 1.1",
        ),
        Row("ledger requests per record", metrics["LedgerRequests"] / max(1, metrics["EventsIn"])),
        Row("records left in queue + DLQ", dlq + (0 if drained else 1), "== 0"),
        Row("elapsed seconds", round(elapsed, 1)),
    ]
    finish(print_table("Shared quota under a backlog (scaled clock: 100 calls / 10 s)", rows))


if __name__ == "__main__":
    main()
