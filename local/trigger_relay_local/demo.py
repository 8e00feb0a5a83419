"""`make demo`: the whole app on the embedded local stack, ending with a readable summary."""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from trigger_relay.observability import mask_email
from trigger_relay.pipeline.routes import load_routes
from trigger_relay_cli.progress import ticking
from trigger_relay_cli.status import format_status, quota_status
from trigger_relay_cli.target import DEMO_WORKDIR
from trigger_relay_local.lambda_runtime.emf import metric_totals
from trigger_relay_local.lambda_runtime.fleet import PollerFleet, invoke, queue_depth, wait_drained
from trigger_relay_local.stack.embedded import Embedded, embedded_stack
from trigger_relay_local.stack.template import ROOT

EVENTS = ROOT / "events"


def _load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def send_demo_events(env: Embedded) -> list[str]:
    """Two signups and two orders, half through SQS and half through EventBridge, one bad."""
    stack = env.stack
    sqs, events = stack.client("sqs"), stack.client("events")
    queue = stack.outputs["IngestQueueUrl"]
    sent = []
    for name in ("sqs-signup.json", "sqs-order.json"):
        body = _load(name)["Records"][0]["body"]
        sqs.send_message(QueueUrl=queue, MessageBody=body)
        sent.append(f"SQS         {json.loads(body)['type']}")
    for name in ("eventbridge-signup.json", "eventbridge-order.json"):
        event = _load(name)
        answer = events.put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "EventBusName": stack.outputs["EventBusName"],
                }
            ]
        )
        assert answer["FailedEntryCount"] == 0, answer
        sent.append(f"EventBridge {event['detail-type']}")
    sqs.send_message(QueueUrl=queue, MessageBody='{"type": "user.signed_up", "user": ')
    sent.append("SQS         a malformed body (to show a rejection)")
    return sent


def _mask_details(details: str) -> str:
    try:
        value = json.loads(details)
    except ValueError:
        return details
    value["lead_email"] = ",".join(mask_email(e) for e in value.get("lead_email", "").split(","))
    return json.dumps(value, separators=(",", ":"))


def _rejected(env: Embedded) -> list[dict[str, Any]]:
    s3 = env.stack.client("s3")
    bucket = env.stack.outputs["RecipientsBucketName"]
    rows: list[dict[str, Any]] = []
    for item in s3.list_objects_v2(Bucket=bucket, Prefix="rejected/").get("Contents", []):
        data = gzip.decompress(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
        rows.extend(json.loads(line) for line in data.splitlines() if line)
    return rows


def run_demo(workdir: Path = DEMO_WORKDIR, out: Any = print) -> dict[str, Any]:
    started = time.monotonic()
    with contextlib.ExitStack() as resources:
        with ticking(out, "Starting the local stack: moto server, vendor simulator, template.yaml"):
            env = resources.enter_context(embedded_stack(workdir))
        return _demo(env, workdir, started, out)


def _demo(env: Embedded, workdir: Path, started: float, out: Any) -> dict[str, Any]:
    stack = env.stack
    out(f"Local AWS (moto server)  {env.moto_endpoint}")
    out(f"Vendor simulator         {env.simulator.url}")
    out(f"Stack from template.yaml {len(stack.resources)} resources created")
    trigger = stack.functions["TriggerFunction"]
    mapping = trigger.event_source or {}
    out(
        f"TriggerFunction poller   batch {mapping.get('BatchSize')}, window "
        f"{mapping.get('MaximumBatchingWindowInSeconds')} s, concurrency "
        f"{mapping.get('ScalingConfig', {}).get('MaximumConcurrency')} (event source mapping)"
    )
    fleet = PollerFleet(stack, trigger, concurrency=2).start()
    out("\nSent:")
    for line in send_demo_events(env):
        out(f"  {line}")
    queue = stack.outputs["IngestQueueUrl"]
    out("\nDelivering (TriggerFunction polls the queue; the vendor simulator answers):")
    drained = wait_drained(
        stack,
        queue,
        timeout=120,
        progress=lambda left, waited: out(
            f"  {waited:4.0f} s  {left} message(s) on the queue (visible, in flight or delayed)"
        ),
    )
    poller = fleet.stop()

    with ticking(out, "Running the recipients sync once, as its schedule would"):
        sync = invoke(stack, stack.functions["RecipientsSyncFunction"], _load("schedule.json"))
    metrics = metric_totals(workdir / "logs")
    received = env.simulator.received()
    rejected = _rejected(env)
    dlq = queue_depth(stack, stack.outputs["IngestDeadLetterQueueUrl"])

    out(
        f"\nTriggerFunction: {poller.get('invocations', 0)} invocations, "
        f"{poller.get('records', 0)} records, {poller.get('failed', 0)} returned to the queue"
    )
    out(
        f"Outcomes: delivered {int(metrics['EventsDelivered'])}, deferred "
        f"{int(metrics['EventsDeferred'])}, rejected {int(metrics['EventsRejected'])}, "
        f"uncertain {int(metrics.get('EventsUncertain', 0))}, "
        f"retry {int(metrics['EventsRetry'])}"
    )
    out("\nVendor calls (as the simulator received them):")
    trigger_calls = [r for r in received if r.api.endswith("_trigger")]
    for call in trigger_calls:
        details = call.query.get("details", "")
        emails = len(json.loads(details).get("lead_email", "").split(",")) if details else 0
        answer = f"code {call.answer_code}, {emails} email(s)"
        out(f"  {call.method} {unquote(call.path)}  -> {answer}")
        out(f"      details={_mask_details(details)}")
        content_type = call.headers.get("content-type")
        scheme = call.headers.get("authorization", "").split(" ", 1)[0]  # the token: never shown
        out(f"      Authorization: {scheme} ****  Content-Type: {content_type}")
    out(f"  OAuth token requests: {sum(1 for r in received if r.api == 'zoho.oauth')}")
    out(f"\nRejected store: {len(rejected)} record(s)")
    for row in rejected:
        out(f"  {row['record_id'][:8]}…  {'; '.join(row['reasons'])}")
    out(f"\nRecipients sync (schedule run once): {sync['rows']} rows, {sync['pages']} pages")
    for run in sync["runs"]:
        if run["key"]:
            out(f"  s3://…/{run['key']}  ({run['rows']} rows, {run['stopped']})")
    out("\nQuota status (trigger-relay status):")
    routes = load_routes(stack.routes_file)
    table = stack.outputs["QuotaTableName"]
    for line in format_status(quota_status(stack.client("dynamodb"), table, routes)):
        out(f"  {line}")
    out(
        f"\nIngest queue left: {queue_depth(stack, queue)}   DLQ: {dlq}   "
        f"drained: {'yes' if drained else 'NO'}   took {time.monotonic() - started:.1f} s"
    )
    out(f"Logs: {workdir / 'logs'}")
    return {
        "drained": drained,
        "poller": poller,
        "metrics": dict(metrics),
        "sync": sync,
        "received": [r.as_json() for r in received],
        "rejected": rejected,
        "dlq": dlq,
    }
