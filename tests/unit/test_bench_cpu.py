"""The CPU benchmark drives the real pipeline with in-memory stand-ins that must keep up."""

from __future__ import annotations

import importlib
import sys

import pytest

from tests.conftest import ROOT


def test_the_cpu_benchmark_runs_the_pipeline(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench_cpu = importlib.import_module("bench_cpu")
    monkeypatch.setattr(bench_cpu, "EVENTS", 2000)
    with pytest.raises(SystemExit):  # the table's verdict; the speed target is not checked here
        bench_cpu.main()
    out = capsys.readouterr().out
    assert "vendor calls built and parsed" in out and " 10 " in out.split("vendor calls")[1][:60]
    sys.modules.pop("bench_cpu", None)
