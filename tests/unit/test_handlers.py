"""The handlers fail at cold start (their first invocation) on a bad configuration, naming
what is wrong, before touching any event."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def cold_start(function: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import app\n"
        "class Context:\n"
        "    function_name = 'f'; memory_limit_in_mb = 128; aws_request_id = 'r'\n"
        "    invoked_function_arn = 'arn:aws:lambda:eu-west-1:123456789012:function:f'\n"
        "    def get_remaining_time_in_millis(self): return 1000\n"
        "import sys\n"
        "try:\n"
        "    app.lambda_handler({'Records': []}, Context())\n"
        "except Exception as exc:\n"
        "    print(exc, file=sys.stderr); sys.exit(1)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "functions" / function,
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": str(ROOT / "layers" / "common"),
            "AWS_DEFAULT_REGION": "eu-west-1",
            **env,
        },
        timeout=60,
        check=False,
    )


TRIGGER_ENV = {
    "QUOTA_TABLE": "q",
    "LEDGER_TABLE": "l",
    "INGEST_QUEUE_URL": "u",
    "REJECTED_BUCKET": "b",
}


def test_a_bad_routes_file_fails_the_cold_start_naming_route_and_field(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        (ROOT / "layers" / "common" / "routes.yaml").read_text().replace("list_key:", "lst_key:", 1)
    )
    result = cold_start("trigger", {**TRIGGER_ENV, "ROUTES_FILE": str(routes)})
    assert result.returncode != 0
    assert "route 'signup-welcome-workflow' (routes.0.list_key): Field required" in result.stderr


def test_a_missing_setting_fails_the_cold_start_naming_it() -> None:
    result = cold_start("trigger", {"ROUTES_FILE": str(ROOT / "layers" / "common" / "routes.yaml")})
    assert result.returncode != 0
    missing = "['INGEST_QUEUE_URL', 'LEDGER_TABLE', 'QUOTA_TABLE', 'REJECTED_BUCKET']"
    assert f"environment variables not set: {missing}" in result.stderr


@pytest.mark.parametrize("function", ["trigger", "recipients_sync"])
def test_a_good_configuration_starts(function: str, tmp_path: Path) -> None:
    # Without a recipients_sync section the sync has nothing to do: no AWS call is made.
    routes = tmp_path / "routes.yaml"
    text = (ROOT / "layers" / "common" / "routes.yaml").read_text()
    routes.write_text(text.split("\nrecipients_sync:")[0])
    env = {**TRIGGER_ENV, "CURSOR_TABLE": "c", "RECIPIENTS_BUCKET": "b", "ROUTES_FILE": str(routes)}
    result = cold_start(function, env)
    assert result.returncode == 0, result.stderr
