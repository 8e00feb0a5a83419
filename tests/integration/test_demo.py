"""`make demo` itself: it runs, drains, and accounts for every event it sends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from trigger_relay_local.demo import run_demo

pytestmark = pytest.mark.integration


def test_demo_runs_and_accounts_for_every_event(tmp_path: Path) -> None:
    lines: list[str] = []
    said: list[float] = []

    def out(line: str) -> None:
        lines.append(line)
        said.append(time.monotonic())

    started = time.monotonic()
    result = run_demo(tmp_path / "demo", out=out)
    gaps = [b - a for a, b in zip([started, *said], said, strict=False)]
    assert max(gaps) < 3.0, f"the demo was silent for {max(gaps):.1f} s"
    assert result["drained"] and result["dlq"] == 0
    metrics = result["metrics"]
    assert metrics["EventsIn"] == 5
    assert metrics["EventsDelivered"] + metrics["EventsRejected"] == 5
    assert metrics["EventsRejected"] == 1 and metrics["EventsRetry"] == 0
    assert any("Vendor calls" in line for line in lines)
    assert not any("@zylker.com," in line for line in lines), "raw emails in the demo output"
    logs = "\n".join(p.read_text() for p in (tmp_path / "demo" / "logs").glob("*.log"))
    assert "zylker.com" not in logs.replace("***@zylker.com", ""), "raw email in a log line"
