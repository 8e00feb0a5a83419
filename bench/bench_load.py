"""Load: 100,000 signup events through the local stack, with time, calls and memory.

The events go onto the ingest queue as a backlog; TriggerFunction's pollers (the template's
batch size and window; 2 processes on this 2-core machine) drain it into the simulator, whose
workflow limit is raised so the run measures the pipeline, not the quota. Every event must be
triggered exactly once, in calls of 200, and accounted for by the handler's own metrics, with
nothing left in the queue or the DLQ.

Quota requests per call are about 2 here: at the raised limit slots are 3 ms apart, so the
schedule is idle at every call, and the gate's first guess (a backlog, having seen one moments
ago) costs a refused write. Under a real backlog it is 1.006 (bench_quota.py).

The times are the local stack's (moto's SQS on the same two cores as the pollers), so they say
more about the machine than about Lambda; the pipeline's own cost per event is in bench_cpu.py.

Run: .venv/bin/python bench/bench_load.py [--events 100000] [--pollers 2]
"""

from __future__ import annotations

import argparse
import json
import math
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


def fewest_calls(log_dir: Path) -> int:
    """The calls the invocations' batches needed at 200 recipients each (one log line each)."""
    needed = 0
    for log in log_dir.glob("*.log"):
        for line in log.read_text().splitlines():
            if '"batch settled"' in line:
                needed += math.ceil(json.loads(line)["recipients"] / 200)
    return needed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--pollers", type=int, default=2)
    args = parser.parse_args()
    config = SimConfig.demo()
    config.limits[API] = (100_000, 300.0, 1800.0)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        routes = write_routes(
            Path(tmp) / "routes.yaml",
            limits={"zoho-main": {API: {"calls": 100_000, "window_seconds": 300}}},
        )
        with embedded_stack(Path(tmp) / "stack", config, routes_source=routes) as env:
            stack = env.stack
            started = time.monotonic()
            enqueue(stack, signups("user", args.events))
            enqueued = time.monotonic() - started
            fleet = PollerFleet(
                stack, stack.functions["TriggerFunction"], concurrency=args.pollers
            ).start()
            drained = wait_drained(stack, stack.outputs["IngestQueueUrl"], timeout=3600)
            processing = time.monotonic() - started - enqueued
            poller = fleet.stop()
            calls = [r for r in env.simulator.received(API) if r.answer_code == "200"]
            triggered = len(next(iter(config.workflows.values())).triggered)
            metrics = metric_totals(stack.workdir / "logs")
            fewest = fewest_calls(stack.workdir / "logs")
            dlq = queue_depth(stack, stack.outputs["IngestDeadLetterQueueUrl"])
    rows = [
        Row("events", args.events),
        Row("seconds to enqueue (moto SQS)", round(enqueued, 1)),
        Row("seconds to process (pollers)", round(processing, 1)),
        Row("events per second processed", round(args.events / processing)),
        Row("invocations", poller.get("invocations", 0)),
        Row("largest batch", poller.get("max_batch", 0)),
        Row("vendor calls", len(calls)),
        Row("  more than 200-recipient calls need for those batches", len(calls) - fewest, "== 0"),
        Row("recipients per call", round(triggered / max(1, len(calls)), 1)),
        Row("ledger requests per record", round(metrics["LedgerRequests"] / args.events, 3)),
        Row("quota requests per vendor call", round(metrics["QuotaRequests"] / len(calls), 3)),
        Row("events triggered (distinct)", triggered, f"== {args.events}"),
        Row("records handled (handler metric)", int(metrics["EventsIn"])),
        Row("  delivered", int(metrics["EventsDelivered"]), f"== {args.events}"),
        Row("  rejected", int(metrics["EventsRejected"]), "== 0"),
        Row("  deferred (re-enqueued with a delay)", int(metrics["EventsDeferred"])),
        Row("  retried (left on the queue)", int(metrics["EventsRetry"])),
        Row(
            "records handled - delivered - deferred - retried",
            int(
                metrics["EventsIn"]
                - metrics["EventsDelivered"]
                - metrics["EventsRejected"]
                - metrics["EventsDeferred"]
                - metrics["EventsRetry"]
            ),
            "== 0",
        ),
        Row("records left in queue + DLQ", dlq + (0 if drained else 1), "== 0"),
        Row("peak RSS of a poller process (MiB)", round(poller.get("max_rss_kb", 0) / 1024, 1)),
    ]
    finish(print_table(f"Load: {args.events:,} events through the local stack", rows))


if __name__ == "__main__":
    main()
