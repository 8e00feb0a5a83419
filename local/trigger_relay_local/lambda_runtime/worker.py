"""One local Lambda execution environment, as a process.

``python -m trigger_relay_local.lambda_runtime.worker``:

With ``--invoke EVENT`` it runs the handler once with that event and writes the result; otherwise
it polls the function's SQS queue like the event source mapping until it gets SIGTERM, then
writes its counters. Its environment is the function's, as the stack resolved it.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import boto3

from trigger_relay_local.lambda_runtime import aws_calls
from trigger_relay_local.lambda_runtime.poller import SqsPoller
from trigger_relay_local.lambda_runtime.runtime import LocalContext, load_handler


def peak_rss_kb() -> int:
    """This process's peak resident memory. VmHWM, because ru_maxrss keeps the parent's peak
    across fork and exec on Linux, which would charge the test runner's memory to the function."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trigger_relay_local.lambda_runtime.worker")
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--invoke", type=Path, help="run once with this event file")
    args = parser.parse_args(argv)
    spec: dict[str, Any] = json.loads(args.spec.read_text())
    aws_calls.record(Path(spec["calls_dir"]))
    handler = aws_calls.recorded(load_handler(Path(spec["code_dir"]), spec["handler"]))

    if args.invoke:
        event = json.loads(args.invoke.read_text())
        context = LocalContext(spec["name"], spec["timeout"], spec["memory"])
        result = handler(event, context)
        args.out.write_text(
            json.dumps({"result": result, "max_rss_kb": peak_rss_kb()}, default=str)
        )
        return 0

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poller = SqsPoller(
        boto3.client("sqs"),
        spec["queue_url"],
        spec["queue_arn"],
        handler,
        function_name=spec["name"],
        timeout=spec["timeout"],
        memory=spec["memory"],
        batch_size=spec["batch_size"],
        batching_window=spec["batching_window"],
        retry_visibility=spec.get("retry_visibility"),
    )
    while not stopping:
        poller.poll_once()
    args.out.write_text(json.dumps({**poller.stats.as_dict(), "max_rss_kb": peak_rss_kb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
