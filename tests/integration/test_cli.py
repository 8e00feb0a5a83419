"""The operator CLI as a user runs it: `local up` in one process, the commands in others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EVENTS, ROOT

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "trigger_relay_local"]
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


def run(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT / "local")])
    return subprocess.run(
        [*CLI, "--workdir", str(workdir), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


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
    assert result.returncode == 1
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
    assert '"lead_email":"joel.raunch@zylker.com"' in out
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
    assert "dead-letter queue  0 waiting" in result.stdout
    assert "rejected store" in result.stdout


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
