"""The dependency audit: pip-audit's verdicts first, PyPI's latest-release data for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.audit import REQUIREMENTS, canonical, classify, pins


def test_every_runtime_and_dev_dependency_is_pinned_once() -> None:
    pinned = pins(REQUIREMENTS)
    assert {"httpx", "pydantic", "aws-lambda-powertools", "pyyaml", "jmespath"} <= set(pinned)
    assert len(pinned) > 100  # the dev lock as well
    runtime = (REQUIREMENTS[0]).read_text().splitlines()
    requirements = [line for line in runtime if line.strip() and not line.startswith("#")]
    assert all("==" in line for line in requirements)


def test_two_versions_of_one_package_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("PyYAML==6.0.3\n")
    (tmp_path / "b.txt").write_text("pyyaml==6.0.2  # older\n")
    with pytest.raises(SystemExit, match="pyyaml is pinned to two versions"):
        pins([tmp_path / "a.txt", tmp_path / "b.txt"])


def test_verdicts_come_from_pip_audit_then_from_the_latest_release() -> None:
    pinned = {"alpha": "1.0", "beta": "2.0", "gamma": "3.0", "delta": "4.0", "eps": "5.0"}
    audited = {
        "alpha": {"name": "alpha", "version": "1.0", "vulns": [{"id": "PYSEC-1"}]},
        "beta": {"name": "beta", "skip_reason": "Dependency not found on PyPI"},
        "gamma": {"name": "gamma", "skip_reason": "Dependency not found on PyPI"},
        "delta": {"name": "delta", "skip_reason": "Dependency not found on PyPI"},
    }
    pages = {
        "beta": {"info": {"version": "2.0"}, "vulnerabilities": [{"id": "GHSA-x"}]},
        "gamma": {"info": {"version": "3.1"}, "vulnerabilities": []},
        "delta": {"info": {"version": "4.0"}, "vulnerabilities": [{"id": "W", "withdrawn": "x"}]},
    }

    def project(name: str) -> dict:
        if name not in pages:
            raise OSError("unreachable")
        return pages[name]

    verdicts = {a.name: a for a in classify(pinned, audited, project)}
    assert (verdicts["alpha"].source, verdicts["alpha"].vulns) == ("pip-audit", ["PYSEC-1"])
    assert (verdicts["beta"].source, verdicts["beta"].vulns) == ("PyPI latest release", ["GHSA-x"])
    assert verdicts["gamma"].source == "not audited" and "3.1" in verdicts["gamma"].note
    assert (verdicts["delta"].source, verdicts["delta"].vulns) == ("PyPI latest release", [])
    assert verdicts["eps"].source == "not audited" and "unreachable" in verdicts["eps"].note


def test_names_are_compared_in_canonical_form() -> None:
    assert canonical("aws_lambda_builders") == canonical("AWS.Lambda-Builders")
