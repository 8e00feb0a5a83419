"""End to end on the local stack: SQS and EventBridge in, documented Zoho requests out."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from tests.conftest import EVENTS
from tests.helpers.iam import check_calls, role_statements, unused_grants
from trigger_relay_local.lambda_runtime.fleet import PollerFleet, invoke, queue_depth, wait_drained
from trigger_relay_local.stack.embedded import Embedded

pytestmark = pytest.mark.integration

WORKFLOW = "9bb77af841821fa7767e402a0f250219"
DOCUMENTED_KEYS = ["lead_email", "triggerkey", "listkey"]
# granted for paths these runs don't take: (function, action, the granted resource ends with)
NOT_TAKEN_HERE = {
    # an upload that failed half-way
    ("RecipientsSyncFunction", "s3:abortmultipartupload", "/recipients/*"),
    # the trigger function minted the shared Zoho token first; the sync reads the client
    # secret when it has to mint one itself (checked in test_recipients_sync)
    ("RecipientsSyncFunction", "secretsmanager:getsecretvalue", ":secret:trigger-relay/*"),
    # an Altcraft call that may have been acted on without an answer (these runs send Zoho
    # calls, which Zoho deduplicates); stored by test_fault_schedules and test_exactly_once
    ("TriggerFunction", "s3:putobject", "/uncertain/*"),
    # Lambda itself, with the function's role, puts a failed scheduled run there
    # https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
    ("RecipientsSyncFunction", "sqs:sendmessage", "SyncDeadLetterQueue"),
}


def event_file(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def workflow_calls(env: Embedded) -> list:
    return env.simulator.received("zoho_campaigns.workflow_trigger")


def test_signup_via_sqs_and_eventbridge_reaches_zoho_as_documented(local: Embedded) -> None:
    # Given the trigger function polling the ingest queue
    stack = local.stack
    queue = stack.outputs["IngestQueueUrl"]
    fleet = PollerFleet(stack, stack.functions["TriggerFunction"], concurrency=1).start()
    try:
        # When a signup is sent to the queue and another is put on the bus
        stack.client("sqs").send_message(
            QueueUrl=queue, MessageBody=event_file("sqs-signup.json")["Records"][0]["body"]
        )
        eb = event_file("eventbridge-signup.json")
        stack.client("events").put_events(
            Entries=[
                {
                    "Source": eb["source"],
                    "DetailType": eb["detail-type"],
                    "Detail": json.dumps(eb["detail"]),
                }
            ]
        )
        assert wait_drained(stack, queue, timeout=60)
    finally:
        stats = fleet.stop()

    # Then Zoho received the documented request for both signups, and nothing is left over
    calls = workflow_calls(local)
    assert calls, "no workflow trigger call reached the simulator"
    emails = []
    tokens = {r.query.get("access_token") for r in local.simulator.received("zoho.oauth")}
    for call in calls:
        assert call.method == "POST"
        assert call.path == f"/api/v1.1/workflow/{WORKFLOW}/action/trigger"
        assert list(call.query) == ["details"]
        details = json.loads(call.query["details"])
        assert list(details) == DOCUMENTED_KEYS
        assert details["triggerkey"] == "9bb77af841821fa704a13363331fd551"
        assert details["listkey"] == "9bb77af841821fa7d765f293a8830994"
        assert call.headers["content-type"] == "application/x-www-form-urlencoded"
        assert call.headers["authorization"].startswith("Zoho-oauthtoken 1000.")
        assert call.answer_code == "200"
        assert call.body == b""
        emails += details["lead_email"].split(",")
    assert sorted(emails) == ["joel.raunch@zylker.com", "patricia@zylker.com"]
    assert None not in tokens or tokens == {None}
    assert stats["records"] == 2 and stats["failed"] == 0
    assert queue_depth(stack, stack.outputs["IngestDeadLetterQueueUrl"]) == 0


def test_a_redelivered_batch_does_not_trigger_twice(local: Embedded) -> None:
    # Given a batch the function has already processed
    trigger = local.stack.functions["TriggerFunction"]
    event = event_file("sqs-order.json")
    before = len(local.simulator.received("zoho_marketing_automation.journey_trigger"))
    first = invoke(local.stack, trigger, event)
    # When SQS delivers the very same batch again
    second = invoke(local.stack, trigger, event)
    # Then the vendor saw one call, and both invocations succeeded for the record
    assert first == second == {"batchItemFailures": []}
    assert len(local.simulator.received("zoho_marketing_automation.journey_trigger")) == before + 1


def test_bad_records_are_stored_with_reasons_and_acknowledged(local: Embedded) -> None:
    trigger = local.stack.functions["TriggerFunction"]
    good = event_file("sqs-signup.json")["Records"][0]
    records = [
        {**good, "messageId": "bad-json", "body": '{"type": '},
        {**good, "messageId": "no-route", "body": json.dumps({"type": "user.deleted"})},
        {
            **good,
            "messageId": "no-email",
            "body": json.dumps({"type": "user.signed_up", "user": {}}),
        },
        {
            **good,
            "messageId": "bad-email",
            "body": json.dumps({"type": "user.signed_up", "user": {"email": "x@"}}),
        },
    ]
    answer = invoke(local.stack, trigger, {"Records": records})
    assert answer == {"batchItemFailures": []}

    s3 = local.stack.client("s3")
    bucket = local.stack.outputs["RecipientsBucketName"]
    stored = {}
    for item in s3.list_objects_v2(Bucket=bucket, Prefix="rejected/")["Contents"]:
        for line in gzip.decompress(
            s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        ).splitlines():
            row = json.loads(line)
            stored[row["record_id"]] = row
    assert {
        k: stored[k]["reasons"][0] for k in ("bad-json", "no-route", "no-email", "bad-email")
    } == {
        "bad-json": "body is not JSON: Expecting value at char 9",
        "no-route": "no route matches event type 'user.deleted'",
        "no-email": "route signup-welcome-workflow: email (user.email) is missing",
        "bad-email": "route signup-welcome-workflow: email: Value error, not a valid email address",
    }
    assert stored["no-route"]["body"] == json.dumps({"type": "user.deleted"})


def test_schedule_syncs_recipients_to_s3(local: Embedded) -> None:
    sync = local.stack.functions["RecipientsSyncFunction"]
    result = invoke(local.stack, sync, event_file("schedule.json"))
    expected = local.simulator.state.config.campaigns["3a1e7c2f9b8d4e6f0000000000000001"].recipients
    assert result["rows"] == sum(expected.values())
    s3 = local.stack.client("s3")
    bucket = local.stack.outputs["RecipientsBucketName"]
    for run in result["runs"]:
        if not run["key"]:
            assert expected.get(run["action"], 0) == 0
            continue
        rows = gzip.decompress(
            s3.get_object(Bucket=bucket, Key=run["key"])["Body"].read()
        ).splitlines()
        assert len(rows) == expected[run["action"]] == run["rows"]
    # a second run finds nothing new: nothing is written twice
    again = invoke(local.stack, sync, event_file("schedule.json"))
    assert again["rows"] == 0


def wait_for_a_free_slot(local: Embedded, key: str) -> None:
    item = (
        local.stack.client("dynamodb")
        .get_item(TableName=local.stack.outputs["QuotaTableName"], Key={"pk": {"S": key}})
        .get("Item", {})
    )
    time.sleep(max(0.0, int(item.get("tat", {"N": "0"})["N"]) / 1000 - time.time()) + 0.05)


def test_direct_eventbridge_invocation_delivers_or_parks_on_the_queue(local: Embedded) -> None:
    trigger = local.stack.functions["TriggerFunction"]
    queue = local.stack.outputs["IngestQueueUrl"]
    event = event_file("eventbridge-order.json")
    # Given the vendor fails every attempt, and the journey's quota has a slot free now (the
    # earlier tests' calls took the last ones: a call now would be held for a fuller one)
    local.simulator.set_faults(status=503, times=2)
    wait_for_a_free_slot(local, "zoho#zoho-main#zoho_marketing_automation.journey_trigger")
    # When EventBridge invokes the function directly
    assert invoke(local.stack, trigger, event) == {"status": "retry"}
    # Then the event waits on the ingest queue instead of being dropped ...
    assert queue_depth(local.stack, queue) == 1
    fleet = PollerFleet(local.stack, trigger, concurrency=1).start()
    try:
        assert wait_drained(local.stack, queue, timeout=60)
    finally:
        fleet.stop()
    # ... and is delivered from there, once
    journey = local.simulator.state.config.journeys["3a1e7c2f9b8d4e6fa0c1d2e3f4a5b6c7"]
    assert "maria@zylker.com" in journey.triggered
    assert invoke(local.stack, trigger, event) == {"status": "delivered"}  # the ledger knows it
    calls = [
        r
        for r in local.simulator.received("zoho_marketing_automation.journey_trigger")
        if r.body == b"" and "maria" in r.query.get("details", "")
    ]
    assert [c.answer_code for c in calls] == ["503", "503", "200"]


def test_logs_carry_no_email_address_or_secret(local: Embedded) -> None:
    """Every log line the functions wrote in this module's runs."""
    import re

    secrets = {
        local.simulator.state.config.client_secret,
        local.simulator.state.config.refresh_token,
        local.simulator.state.config.altcraft_token,
    }
    tokens = set(local.simulator.state.tokens)
    email = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
    lines = 0
    for log in (local.stack.workdir / "logs").glob("*.log"):
        for line in log.read_text().splitlines():
            lines += 1
            assert not email.search(line.replace("***@", "")), line
            assert not any(s in line for s in secrets | tokens), "a secret in the logs"
    assert lines > 0


def test_every_aws_call_the_functions_made_is_allowed_by_their_roles(local: Embedded) -> None:
    """Runs last in this module, after both functions did all of the above."""
    made = {f: check_calls(local, f) for f in ("TriggerFunction", "RecipientsSyncFunction")}
    # and the roles grant little else: each granted action was needed by some call here
    for function, requests in made.items():
        unused = {
            (action, resource)
            for action, resource in unused_grants(role_statements(local, function), requests)
            if not any(
                f == function and a == action and (resource.endswith(r) or r in resource)
                for f, a, r in NOT_TAKEN_HERE
            )
        }
        assert not unused, f"{function} is granted what its code never used: {sorted(unused)}"
