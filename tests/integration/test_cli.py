"""The operator CLI as a user runs it: `local up` in one process, the commands in others."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EVENTS, ROOT

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "trigger_relay_cli"]
TRIAL_ROUTE = """
  - name: trial-ended-workflow
    match: {type: trial.ended}
    action: zoho_campaigns.workflow_trigger
    account: zoho-main
    params:
      workflow_key: 5f00ba11aa00000000000000000000aa
      trigger_key: 5f00ba11aa0000000000000000000001
      list_key: 5f00ba11aa0000000000000000000002
    mapping: {email: account.owner_email}
"""


def cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: its own process, none of the test's AWS settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(env or {})
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "layers" / "common"), str(ROOT / "local")]
    )
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return cli("--workdir", str(workdir), *args, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("cli") / "stack"
    # The docs' walkthrough: a new event type routed to a new Zoho workflow.
    routes = workdir.parent / "routes.yaml"
    routes.write_text(
        (ROOT / "layers" / "common" / "routes.yaml")
        .read_text()
        .replace("\nrecipients_sync:", TRIAL_ROUTE + "\nrecipients_sync:")
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT / "local")]),
    }
    log = (workdir.parent / "up.log").open("w")
    process = subprocess.Popen(
        [*CLI, "--workdir", str(workdir), "local", "up", "--routes", str(routes)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(120):
            if (workdir / "stack.json").exists():
                break
            assert process.poll() is None, (workdir.parent / "up.log").read_text()
            time.sleep(0.5)
        yield workdir
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        assert not (workdir / "stack.json").exists()


def test_a_new_event_type_reaches_a_new_workflow(workdir: Path) -> None:
    event = workdir.parent / "trial-ended.json"
    event.write_text(
        json.dumps({"type": "trial.ended", "account": {"owner_email": "owner@example.com"}})
    )
    explained = run(workdir, "explain", str(event), "--routes", str(workdir.parent / "routes.yaml"))
    assert (
        "+ trial-ended-workflow: zoho_campaigns.workflow_trigger -> owner@example.com"
        in explained.stdout
    )
    assert "/api/v1.1/workflow/5f00ba11aa00000000000000000000aa/action/trigger" in explained.stdout
    sent = run(workdir, "send", str(event))
    assert sent.returncode == 0 and ": delivered" in sent.stdout, sent.stdout + sent.stderr


def test_commands_without_a_local_stack_say_how_to_start_one(tmp_path: Path) -> None:
    result = run(tmp_path, "status")
    assert result.returncode == 2 and "trigger-relay local up" in result.stderr


def test_validate_points_at_the_route_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "routes.yaml"
    bad.write_text(
        (ROOT / "layers" / "common" / "routes.yaml")
        .read_text()
        .replace("email: user.email", "email: user..email")
    )
    result = run(tmp_path, "validate", str(bad))
    assert result.returncode == 2  # a configuration error
    assert (
        "route 'signup-welcome-workflow' (routes.0)" in result.stderr
        and "mapping.email: bad JMESPath 'user..email'" in result.stderr
    )
    assert run(tmp_path, "validate", "examples/routes.all-apis.yaml").stdout.startswith(
        "ok: 2 account(s), 8 route(s)"
    )


def test_explain_shows_routes_and_the_exact_request_without_secrets(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "explain",
        str(EVENTS / "eventbridge-signup.json"),
        "--routes",
        "examples/routes.all-apis.yaml",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "+ signup-welcome-workflow" in out and "+ signup-altcraft-bulk" in out
    assert "- order-journey: no match (type is 'user.signed_up', route wants 'order.placed')" in out
    # the request as sent: the query percent-encoded, as it goes on the wire
    assert "%22lead_email%22%3A%22joel.raunch%40zylker.com%22" in out
    assert "Zoho-oauthtoken ****" in out and '"token": "****"' in out


def other_source(directory: Path) -> Path:
    """The docs' signup event from an app whose sources lack the stack's prefix."""
    event = json.loads((EVENTS / "eventbridge-signup.json").read_text())
    path = directory / "myapp-signup.json"
    path.write_text(json.dumps({**event, "source": "myapp.users"}))
    return path


def test_explain_says_when_the_ingest_rule_would_drop_an_eventbridge_event(
    tmp_path: Path,
) -> None:
    result = run(tmp_path, "explain", str(other_source(tmp_path)))
    assert "NOT RELAYED - the ingest rule passes only sources starting with 'app.'" in result.stdout
    assert "+ signup-welcome-workflow" not in result.stdout
    assert "0 vendor call(s)" in result.stdout
    passes = run(tmp_path, "explain", str(other_source(tmp_path)), "--source-prefix", "myapp.")
    assert "+ signup-welcome-workflow" in passes.stdout


def test_send_asks_the_stacks_rule_and_does_not_wait_for_a_dropped_event(workdir: Path) -> None:
    started = time.monotonic()
    result = run(workdir, "send", str(other_source(workdir.parent)))
    assert result.returncode != 0
    assert "NOT RELAYED - the ingest rule passes only sources starting with 'app.'" in result.stdout
    assert "myapp.users" in result.stdout
    assert time.monotonic() - started < 30, "waited for an event the rule drops"


def test_send_follows_each_event_to_its_outcome(workdir: Path) -> None:
    delivered = run(workdir, "send", str(EVENTS / "sqs-signup.json"))
    assert delivered.returncode == 0, delivered.stdout + delivered.stderr
    assert "evt-signup-0001: delivered" in delivered.stdout
    via_bus = run(workdir, "send", str(EVENTS / "eventbridge-order.json"))
    assert ": delivered" in via_bus.stdout
    bad = workdir.parent / "bad.json"
    bad.write_text(json.dumps({"type": "user.signed_up", "user": {"email": "not-an-email"}}))
    rejected = run(workdir, "send", str(bad))
    assert (
        "rejected: route signup-welcome-workflow: email: Value error, not a valid email address"
        in rejected.stdout
    )


def test_status_shows_quota_queues_and_rejected(workdir: Path) -> None:
    result = run(workdir, "status")
    assert result.returncode == 0, result.stderr
    assert "zoho#zoho-main#zoho_campaigns.workflow_trigger" in result.stdout
    assert "QUEUE" in result.stdout and "WAITING" in result.stdout and "DELAYED" in result.stdout
    assert re.search(r"dead-letter queue +0 +0 +0", result.stdout), result.stdout
    assert "VENDOR#ACCOUNT#API" in result.stdout
    assert "rejected store" in result.stdout and "trigger-relay rejected list" in result.stdout


def test_redrive_moves_rejected_records_back_and_is_safe_to_rerun(workdir: Path) -> None:
    first = run(workdir, "redrive", "--from", "rejected", "--reason", "valid email")
    assert first.returncode == 0 and "redriven: 1 record(s)" in first.stdout, (
        first.stdout + first.stderr
    )
    again = run(workdir, "redrive", "--from", "rejected", "--reason", "no such reason")
    assert "redriven: 0 record(s)" in again.stdout


def test_sync_runs_one_campaign_now(workdir: Path) -> None:
    result = run(workdir, "sync", "--campaign", "3a1e7c2f9b8d4e6f0000000000000001")
    assert result.returncode == 0, result.stderr
    assert "600 rows in 11 pages" in result.stdout


# ------------------------------------------------ every failure reads like a sentence


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    # what is wrong and what to do; `send`'s progress lines (one per 2 s waited) aside
    said = [line for line in result.stderr.splitlines() if not line.startswith("waiting for ")]
    assert len("\n".join(said).strip().splitlines()) <= 2, result.stderr


def test_a_second_local_stack_on_the_same_directory_is_refused_and_the_first_lives_on(
    workdir: Path,
) -> None:
    second = run(workdir, "local", "up", timeout=60)
    assert second.returncode == 2
    assert "a local stack is already running in" in second.stderr
    no_traceback(second)
    assert run(workdir, "status").returncode == 0, "the first stack was wiped"


def test_local_up_refuses_a_routes_file_validate_refuses(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (ROOT / "layers" / "common" / "routes.yaml").read_text().replace("list_key:", "lst_key:", 1)
    )
    result = run(tmp_path / "stack", "local", "up", "--routes", str(bad), timeout=60)
    assert result.returncode == 2
    assert "route 'signup-welcome-workflow'" in result.stderr and "list_key" in result.stderr
    no_traceback(result)
    broken = tmp_path / "broken.yaml"
    broken.write_text("accounts:\n  zoho-main: {vendor: zoho\nroutes: []\n")
    result = run(tmp_path / "stack", "local", "up", "--routes", str(broken), timeout=60)
    assert result.returncode == 2 and "line" in result.stderr and "column" in result.stderr
    no_traceback(result)


def test_ordinary_mistakes_end_in_one_or_two_lines_and_a_distinct_exit_code(
    workdir: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"type": "user.signed_up", "pad": "x" * 1_100_000}))
    result = run(workdir, "send", str(big))
    assert result.returncode == 2 and "SQS takes at most 1,048,576" in result.stderr
    no_traceback(result)

    env_without_region = {"AWS_EC2_METADATA_DISABLED": "true"}
    result = run_env(tmp_path, env_without_region, "--stack", "prod-relay", "status")
    assert result.returncode == 2 and "no AWS region is set" in result.stderr
    assert "AWS_DEFAULT_REGION" in result.stderr
    no_traceback(result)
    result = run_env(
        tmp_path, env_without_region, "--stack", "prod-relay", "--region", "eu-west-1", "status"
    )
    assert result.returncode == 2 and "no usable AWS credentials" in result.stderr
    no_traceback(result)
    debug = run_env(tmp_path, env_without_region, "--debug", "--stack", "prod-relay", "status")
    assert "Traceback" in debug.stderr, "--debug shows the traceback"


def run_env(workdir: Path, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # HOME: no ~/.aws of the machine running the tests
    return cli("--workdir", str(workdir / "none"), *args, env={**extra, "HOME": str(workdir)})


def test_a_routes_change_applies_to_the_running_stack_and_a_redrive_then_delivers(
    workdir: Path,
) -> None:
    event = workdir.parent / "plan-upgraded.json"
    event.write_text(
        json.dumps(
            {"id": "evt-upgrade-1", "type": "plan.upgraded", "user": {"email": "Up@Example.com"}}
        )
    )
    first = run(workdir, "send", str(event), "--timeout", "30")
    assert first.returncode == 3, first.stdout + first.stderr  # rejected
    assert "evt-upgrade-1: rejected: no route matches event type 'plan.upgraded'" in first.stdout
    routes = workdir.parent / "routes.yaml"
    routes.write_text(
        routes.read_text().replace(
            "\nrecipients_sync:",
            TRIAL_ROUTE.replace("trial-ended-workflow", "upgrade-workflow")
            .replace("trial.ended", "plan.upgraded")
            .replace("account.owner_email", "user.email")
            + "\nrecipients_sync:",
        )
    )
    deadline = time.monotonic() + 30
    while "routes reloaded" not in (workdir.parent / "up.log").read_text():
        assert time.monotonic() < deadline, (workdir.parent / "up.log").read_text()
        time.sleep(0.5)
    redriven = run(workdir, "redrive", "--from", "rejected", "--reason", "plan.upgraded")
    assert "redriven: 1 record(s)" in redriven.stdout, redriven.stdout + redriven.stderr
    again = run(workdir, "send", str(event))
    assert again.returncode == 0 and "evt-upgrade-1: delivered" in again.stdout, again.stdout


def test_rejected_list_and_show_read_the_stores_with_filters(workdir: Path) -> None:
    bad = workdir.parent / "no-email.json"
    bad.write_text(json.dumps({"id": "evt-no-email", "type": "user.signed_up", "user": {}}))
    sent = run(workdir, "send", str(bad))
    assert sent.returncode == 3
    listed = run(workdir, "rejected", "list", "--route", "signup-welcome-workflow")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["STORED", "(UTC)", "STORE", "EVENT"]
    assert any("evt-no-email" in r and "route signup-welcome-workflow" in r for r in rows)
    assert "evt-no-email" not in run(workdir, "rejected", "list", "--route", "nope").stdout
    assert "evt-no-email" in run(workdir, "rejected", "list", "--since", "10m").stdout
    assert "evt-no-email" not in run(workdir, "rejected", "list", "--reason", "zzz").stdout
    assert "evt-no-email" in run(workdir, "rejected", "list", "--reason", "IS MISSING").stdout
    from datetime import UTC, datetime, timedelta, timezone

    ahead = (datetime.now(UTC) - timedelta(minutes=10)).astimezone(timezone(timedelta(hours=14)))
    assert "evt-no-email" in run(workdir, "rejected", "list", "--since", ahead.isoformat()).stdout
    shown = run(workdir, "rejected", "show", "evt-no-email")
    assert (
        shown.returncode == 0
        and "reasons" in shown.stdout
        and '"type": "user.signed_up"' in shown.stdout
    )
    missing = run(workdir, "rejected", "show", "evt-never")
    assert missing.returncode == 1 and "no stored record" in missing.stderr
    no_traceback(missing)


def test_send_exit_codes_and_event_ids_in_the_order_sent(workdir: Path) -> None:
    batch = workdir.parent / "two.json"
    records = [
        {
            "messageId": "m1",
            "body": json.dumps(
                {"id": "evt-b-1", "type": "user.signed_up", "user": {"email": "b1@example.com"}}
            ),
        },
        {
            "messageId": "m2",
            "body": json.dumps(
                {"id": "evt-b-2", "type": "user.signed_up", "user": {"email": "nope"}}
            ),
        },
    ]
    batch.write_text(json.dumps({"Records": records}))
    result = run(workdir, "send", str(batch))
    assert result.returncode == 3  # one rejected
    lines = [line.strip() for line in result.stdout.splitlines() if line.startswith("  evt-")]
    assert [line.split(":")[0] for line in lines] == ["evt-b-1", "evt-b-2"]
    assert "(source None)" not in result.stdout


def test_sync_of_an_unknown_campaign_fails_in_one_line(workdir: Path) -> None:
    result = run(workdir, "sync", "--campaign", "nosuchcampaign")
    assert result.returncode == 1
    assert result.stdout.count("6002") == 1, result.stdout
    assert "all 9 actions" in result.stdout


def test_a_second_sync_says_it_resumed_from_the_cursor(workdir: Path) -> None:
    campaign = "3a1e7c2f9b8d4e6f0000000000000001"
    run(workdir, "sync", "--campaign", campaign)
    again = run(workdir, "sync", "--campaign", campaign)
    assert again.returncode == 0
    assert "resumed at index" in again.stdout, again.stdout


def test_explain_and_send_agree_on_size_case_and_international_addresses(
    workdir: Path, tmp_path: Path
) -> None:
    event = json.loads((EVENTS / "eventbridge-signup.json").read_text())
    big = tmp_path / "big-eb.json"
    big.write_text(json.dumps({**event, "detail": {**event["detail"], "pad": "x" * 270_000}}))
    explained = run(tmp_path, "explain", str(big))
    assert "TOO LARGE - the EventBridge entry is" in explained.stdout
    sent = run(workdir, "send", str(big))
    assert sent.returncode == 2 and "the EventBridge entry is" in sent.stderr
    no_traceback(sent)

    def signup(email: str) -> Path:
        path = tmp_path / "signup.json"
        path.write_text(json.dumps({"type": "user.signed_up", "user": {"email": email}}))
        return path

    mixed = run(tmp_path, "explain", str(signup("Ann.Lee@Zylker.COM")))
    assert "-> Ann.Lee@zylker.com" in mixed.stdout  # what the request carries
    assert "Ann.Lee%40zylker.com" in mixed.stdout
    idn = run(tmp_path, "explain", str(signup("jose@bücher.de")))
    assert "-> jose@xn--bcher-kva.de" in idn.stdout
    utf8_local = run(tmp_path, "explain", str(signup("josé.müller@zylker.com")))
    assert "REJECTED" in utf8_local.stdout and "non-ASCII" in utf8_local.stdout
    refused = run(workdir, "send", str(signup("josé.müller@zylker.com")))
    assert refused.returncode == 3 and "non-ASCII" in refused.stdout
    # from another directory, the default routes file is still found
    elsewhere = cli("explain", str(signup("ann@example.com")), cwd=tmp_path, timeout=60)
    assert elsewhere.returncode == 0 and "+ signup-welcome-workflow" in elsewhere.stdout, (
        elsewhere.stderr
    )


def test_validate_refuses_the_docs_placeholders(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        (ROOT / "layers" / "common" / "routes.yaml")
        .read_text()
        .replace(
            "\nrecipients_sync:",
            TRIAL_ROUTE.replace("5f00ba11aa00000000000000000000aa", "<workflow key>")
            + "\nrecipients_sync:",
        )
    )
    result = run(tmp_path, "validate", str(routes))
    assert result.returncode == 2 and "'<workflow key>', a placeholder" in result.stderr
    no_traceback(result)


def test_local_up_never_clears_a_directory_it_did_not_make(workdir: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    result = run(mine, "local", "up", timeout=60)
    assert result.returncode == 2 and "is not empty and is not a local stack's" in result.stderr
    assert (mine / "notes.txt").read_text() == "my notes"
    no_traceback(result)
    # a directory inside a running stack's: that stack clears it when it restarts
    inner = run(workdir / "inner", "local", "up", timeout=60)
    assert inner.returncode == 2 and "is inside the local stack directory" in inner.stderr
    # the directory above a running stack (it holds the routes file and the log)
    above = run(workdir.parent, "local", "up", timeout=60)
    assert above.returncode == 2, above.stderr
    assert run(workdir, "status").returncode == 0, "the running stack was touched"
    # the current directory, spelled as `.`
    here = cli("--workdir", ".", "local", "up", cwd=mine, timeout=60)
    assert here.returncode == 2 and "holds your work" in here.stderr
    assert (mine / "notes.txt").exists()


def test_malformed_event_files_are_configuration_errors(tmp_path: Path) -> None:
    for document in (
        {"Records": {"a": 1}},
        {"Records": [{"body": {"type": "x"}}]},
        {"Records": None},
        {"Records": [{"body": "{}", "messageAttributes": 5}]},
        {"Records": [{"body": "{}", "messageAttributes": {"a": {"stringValue": 5}}}]},
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(document))
        result = run(tmp_path, "explain", str(bad))
        assert result.returncode == 2 and "Records must be a list" in result.stderr
        no_traceback(result)


def test_a_body_that_is_json_but_not_an_object_ends_rejected_not_in_a_crash(
    workdir: Path,
) -> None:
    odd = workdir.parent / "list-body.json"
    odd.write_text(json.dumps({"Records": [{"messageId": "m-list", "body": "[1, 2]"}]}))
    result = run(workdir, "send", str(odd), "--timeout", "30")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "body is a JSON list, not an object" in result.stdout
    no_traceback(result)
