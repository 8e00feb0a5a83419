"""Faults on the local stack: every event ends delivered (or rejected), none lost, none twice."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.helpers.events import signups
from tests.helpers.iam import check_calls
from trigger_relay_local.lambda_runtime.fleet import (
    PollerFleet,
    enqueue,
    queue_depth,
    wait_drained,
)
from trigger_relay_local.stack.embedded import Embedded, embedded_stack

pytestmark = pytest.mark.integration

API = "zoho_campaigns.workflow_trigger"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    with embedded_stack(tmp_path_factory.mktemp("faults")) as stack:
        # Records a Lambda dies holding come back after the visibility timeout: 8 s here, so
        # that the kill test is quick. Lambda itself refuses a visibility timeout shorter than
        # the function's timeout and advises six times it (the template's 360 s;
        # https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html). It must at
        # least outlast the 5 s batching window: at 3 s a message became visible again while
        # its own batch was being gathered, was received twice per invocation, and reached the
        # DLQ after it had been delivered.
        stack.stack.client("sqs").set_queue_attributes(
            QueueUrl=stack.stack.outputs["IngestQueueUrl"], Attributes={"VisibilityTimeout": "8"}
        )
        yield stack


def send(env: Embedded, tag: str, count: int) -> set[str]:
    enqueue(env.stack, signups(tag, count))
    return {f"{tag}{n}@example.com" for n in range(count)}


def drain(env: Embedded, timeout: float = 90) -> dict[str, int]:
    fleet = PollerFleet(
        env.stack, env.stack.functions["TriggerFunction"], concurrency=1, retry_visibility=1
    ).start()
    try:
        assert wait_drained(env.stack, env.stack.outputs["IngestQueueUrl"], timeout=timeout)
    finally:
        stats = fleet.stop()
    return stats


def triggered_calls(env: Embedded, emails: set[str]) -> Counter[str]:
    """How often each email was sent in a call Zoho accepted."""
    sent: Counter[str] = Counter()
    for call in env.simulator.received(API):
        if call.answer_code == "200":
            sent.update(
                e for e in json.loads(call.query["details"])["lead_email"].split(",") if e in emails
            )
    return sent


def assert_all_delivered_once(env: Embedded, emails: set[str]) -> None:
    workflow = next(iter(env.simulator.state.config.workflows.values()))
    assert emails <= workflow.triggered, f"lost: {len(emails - workflow.triggered)}"
    sent = triggered_calls(env, emails)
    assert set(sent) == emails
    assert queue_depth(env.stack, env.stack.outputs["IngestDeadLetterQueueUrl"]) == 0


@pytest.mark.parametrize(
    ("tag", "faults"),
    [
        ("err", {"status": 503, "times": 4}),  # both in-call attempts of two invocations
        ("reset", {"drop": True, "times": 2}),  # connection closed without an answer
        ("slow", {"delay_seconds": 2.0, "times": 3}),  # slow, but within the 10 s timeout
    ],
)
def test_vendor_faults_lose_nothing_and_send_nothing_twice(
    env: Embedded, tag: str, faults: dict
) -> None:
    env.simulator.set_faults(**faults)
    emails = send(env, tag, 300)
    drain(env)
    assert_all_delivered_once(env, emails)
    assert max(triggered_calls(env, emails).values()) == 1, "an email was triggered twice"


def test_a_lambda_killed_mid_batch_loses_nothing(env: Embedded) -> None:
    # Given a batch whose vendor calls are slow, and a function killed in the middle of it
    env.simulator.set_faults(delay_seconds=1.5, times=3)
    emails = send(env, "killed", 1000)
    # a 20 s function: the claims of the killed invocation lapse 20 s after it started
    spec = dataclasses.replace(env.stack.functions["TriggerFunction"], timeout=20)
    fleet = PollerFleet(env.stack, spec, concurrency=1).start()
    time.sleep(8)  # the batch is gathered and its first calls are on their way
    for process, _ in fleet.processes:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    fleet.processes.clear()
    # When a new execution environment takes over after the visibility timeout
    drain(env)
    # Then every event was delivered, and the ledger kept what had been sent from going again
    assert_all_delivered_once(env, emails)
    sent = triggered_calls(env, emails)
    assert sum(sent.values()) <= len(emails) + 200, "more than the call in flight was resent"


def test_the_trigger_role_allows_every_call_it_made(env: Embedded) -> None:
    check_calls(env, "TriggerFunction")
