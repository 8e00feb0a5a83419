"""Local Lambda execution environments as processes, fed by SQS pollers or invoked once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trigger_relay_local.stack.local_stack import FunctionSpec, LocalStack
from trigger_relay_local.stack.template import ROOT


def _process_env(
    stack: LocalStack, spec: FunctionSpec, extra: dict[str, str] | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(stack.env())
    env.update(spec.environment)
    env.update(extra or {})
    env["AWS_LAMBDA_FUNCTION_NAME"] = spec.name
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "local"), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return env


def _worker_command(spec_file: Path, out: Path, *extra: str) -> list[str]:
    """One local execution environment: our own interpreter running the worker module."""
    return [
        sys.executable,
        "-m",
        "trigger_relay_local.lambda_runtime.worker",
        "--spec",
        str(spec_file),
        "--out",
        str(out),
        *extra,
    ]


def _spec_json(stack: LocalStack, spec: FunctionSpec, **more: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "code_dir": str(spec.code_dir),
        "handler": spec.handler,
        "timeout": spec.timeout,
        "memory": spec.memory,
        "calls_dir": str(calls_dir(stack, spec)),
        **more,
    }


def calls_dir(stack: LocalStack, spec: FunctionSpec) -> Path:
    """Where the function's execution environments record the AWS calls its code makes."""
    return stack.workdir / "aws-calls" / spec.logical_id


@dataclass
class PollerFleet:
    """Up to ScalingConfig.MaximumConcurrency processes polling the function's queue."""

    stack: LocalStack
    spec: FunctionSpec
    concurrency: int | None = None
    retry_visibility: int | None = None
    extra_env: dict[str, str] | None = None
    processes: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self) -> PollerFleet:
        mapping = self.spec.event_source or {}
        most = int(mapping.get("ScalingConfig", {}).get("MaximumConcurrency", 2))
        count = min(most, self.concurrency or most)
        queue_arn = mapping["EventSourceArn"]
        queue_url = self.stack.client("sqs").get_queue_url(QueueName=queue_arn.split(":")[-1])[
            "QueueUrl"
        ]
        logs = self.stack.workdir / "logs"
        logs.mkdir(exist_ok=True)
        spec_file = self.stack.workdir / f"{self.spec.logical_id}.spec.json"
        spec_file.write_text(
            json.dumps(
                _spec_json(
                    self.stack,
                    self.spec,
                    queue_url=queue_url,
                    queue_arn=queue_arn,
                    batch_size=int(mapping.get("BatchSize", 10)),
                    batching_window=float(mapping.get("MaximumBatchingWindowInSeconds", 0)),
                    retry_visibility=self.retry_visibility,
                )
            )
        )
        env = _process_env(self.stack, self.spec, self.extra_env)
        for index in range(count):
            out = self.stack.workdir / f"{self.spec.logical_id}-{index}.stats.json"
            out.unlink(missing_ok=True)
            with (logs / f"{self.spec.logical_id}-{index}.log").open("ab") as log:
                process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    _worker_command(spec_file, out),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            self.processes.append((process, out))
        return self

    def stop(self, timeout: float = 90.0) -> dict[str, int]:
        """Let each process finish its batch, then add up their counters."""
        for process, _ in self.processes:
            process.terminate()
        totals: dict[str, int] = {}
        for process, out in self.processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if out.exists():
                for name, value in json.loads(out.read_text()).items():
                    totals[name] = (
                        max(totals.get(name, 0), value)
                        if name.startswith("max_")
                        else totals.get(name, 0) + value
                    )
        self.processes.clear()
        return totals


def invoke(stack: LocalStack, spec: FunctionSpec, event: dict[str, Any], **kwargs: Any) -> Any:
    """Run the function once in a fresh process with this event; its result, or an error."""
    return invoke_measured(stack, spec, event, **kwargs)[0]


def invoke_measured(
    stack: LocalStack,
    spec: FunctionSpec,
    event: dict[str, Any],
    extra_env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> tuple[Any, int]:
    """``invoke``, and the process's peak resident memory in KiB."""
    logs = stack.workdir / "logs"
    logs.mkdir(exist_ok=True)
    spec_file = stack.workdir / f"{spec.logical_id}.invoke.json"
    spec_file.write_text(json.dumps(_spec_json(stack, spec)))
    event_file = stack.workdir / f"{spec.logical_id}.event.json"
    event_file.write_text(json.dumps(event))
    out = stack.workdir / f"{spec.logical_id}.result.json"
    out.unlink(missing_ok=True)
    with (logs / f"{spec.logical_id}-invoke.log").open("ab") as log:
        code = subprocess.run(  # noqa: S603 - our own interpreter and module
            _worker_command(spec_file, out, "--invoke", str(event_file)),
            env=_process_env(stack, spec, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            timeout=timeout or spec.timeout + 30,
            check=False,
        ).returncode
    if code != 0 or not out.exists():
        raise RuntimeError(f"{spec.logical_id} failed (exit {code}); see {logs}")
    answer = json.loads(out.read_text())
    return answer["result"], int(answer["max_rss_kb"])


def queue_depth(stack: LocalStack, queue_url: str) -> int:
    """Messages visible, in flight and delayed: zero when the queue has nothing left to do."""
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def wait_drained(
    stack: LocalStack,
    queue_url: str,
    timeout: float,
    settle: float = 1.5,
    progress: Callable[[int, float], None] | None = None,
    every: float = 1.5,
) -> bool:
    """Wait until the queue stays empty for `settle` seconds; `progress(depth, waited)` is told
    how it goes every `every` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    empty_since: float | None = None
    told = started
    while time.monotonic() < deadline:
        depth = queue_depth(stack, queue_url)
        if progress is not None and time.monotonic() - told >= every:
            told = time.monotonic()
            progress(depth, told - started)
        if depth == 0:
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= settle:
                return True
        else:
            empty_since = None
        time.sleep(0.25)
    return False


def enqueue(stack: LocalStack, bodies: list[str]) -> None:
    """Send message bodies to the ingest queue, ten per SendMessageBatch."""
    sqs = stack.client("sqs")
    queue = stack.outputs["IngestQueueUrl"]
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=queue,
            Entries=[
                {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])
            ],
        )
