"""Audit every pinned dependency for known vulnerabilities: pip-audit, with PyPI's data as fallback.

pip-audit asks PyPI about each pinned release (``/pypi/<name>/<version>/json``). Behind a
registry mirror that serves only project pages, that answer is missing and pip-audit skips the
package. The project page (``/pypi/<name>/json``) still lists the known vulnerabilities of the
latest release, so a pin that is the latest release is audited from there; an older pin is
reported as not audited, and fails the run with ``--strict``.

Run: make audit   (or .venv-audit/bin/python scripts/audit.py [--strict] [requirements ...])
Exit: 1 when a pinned release has a known vulnerability, or with --strict when one could not be
audited; 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = [ROOT / "layers/common/requirements.txt", ROOT / "requirements/dev.lock"]
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(paths: list[Path]) -> dict[str, str]:
    """Canonical name -> pinned version, from requirement or constraint files."""
    found: dict[str, str] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if match := _PIN.match(line):
                name, version = canonical(match.group(1)), match.group(2)
                if found.get(name, version) != version:
                    raise SystemExit(f"{name} is pinned to two versions: {found[name]}, {version}")
                found[name] = version
    return found


@dataclass
class Audit:
    name: str
    version: str
    source: str  # "pip-audit", "PyPI latest release", or "not audited"
    vulns: list[str] = field(default_factory=list)
    note: str = ""


def run_pip_audit(paths: list[Path]) -> dict[str, dict]:
    """pip-audit's JSON per canonical name (vulns, or a skip_reason)."""
    beside = Path(sys.executable).with_name("pip-audit")  # the audit virtualenv's own
    command = [str(beside) if beside.exists() else shutil.which("pip-audit") or "pip-audit"]
    for path in paths:
        command += ["-r", str(path)]
    command += ["--no-deps", "--disable-pip", "-f", "json", "--progress-spinner", "off"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:  # it could not reach its service at all
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit gave no report (exit {done.returncode}): {last}")
        return {}
    return {canonical(d["name"]): d for d in report["dependencies"]}


def pypi_project(name: str) -> dict:
    url = f"https://pypi.org/pypi/{name}/json"
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.load(answer)


def classify(
    pinned: dict[str, str],
    audited: dict[str, dict],
    project: Callable[[str], dict],
) -> list[Audit]:
    """One verdict per pin: pip-audit's where it answered, else PyPI's latest-release data."""
    results: list[Audit] = []
    fallback: list[str] = []
    for name, version in sorted(pinned.items()):
        entry = audited.get(name)
        if entry is not None and "skip_reason" not in entry:
            vulns = [v["id"] for v in entry.get("vulns", [])]
            results.append(Audit(name, version, "pip-audit", vulns))
        else:
            fallback.append(name)

    def from_project(name: str) -> Audit:
        version = pinned[name]
        try:
            page = project(name)
        except OSError as exc:
            return Audit(name, version, "not audited", note=f"PyPI unreachable: {exc}")
        latest = page["info"]["version"]
        if latest != version:
            return Audit(name, version, "not audited", note=f"older than the latest {latest}")
        vulns = [v["id"] for v in page.get("vulnerabilities", []) if not v.get("withdrawn")]
        return Audit(name, version, "PyPI latest release", vulns)

    with ThreadPoolExecutor(8) as pool:
        results += pool.map(from_project, fallback)
    return sorted(results, key=lambda a: a.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="*", type=Path, default=REQUIREMENTS)
    parser.add_argument("--strict", action="store_true", help="fail when a pin is not audited")
    args = parser.parse_args(argv)
    pinned = pins(args.requirements)
    results = classify(pinned, run_pip_audit(args.requirements), pypi_project)

    vulnerable = [a for a in results if a.vulns]
    unaudited = [a for a in results if a.source == "not audited"]
    for audit in vulnerable:
        print(f"VULNERABLE  {audit.name}=={audit.version}: {', '.join(audit.vulns)}")
    for audit in unaudited:
        print(f"not audited {audit.name}=={audit.version}: {audit.note}")
    by_source: dict[str, int] = {}
    for audit in results:
        if audit.source != "not audited":
            by_source[audit.source] = by_source.get(audit.source, 0) + 1
    audited = ", ".join(f"{n} by {source}" for source, n in sorted(by_source.items()))
    print(
        f"{len(results)} pinned packages: audited {audited}; {len(unaudited)} not audited; "
        f"{len(vulnerable)} with known vulnerabilities"
    )
    if vulnerable or (args.strict and unaudited):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
