"""Cold start: the whole first invocation's setup, as a ratio to `import boto3` alone.

Measured as Lambda sees it: fresh interpreters without site-packages (`python -S`), with only
boto3 (the runtime's) and the layer's pinned requirements on the path. Median of several runs
each. Target: the handler's import plus its first-call setup (the domain package, boto3, the
routes file: the whole cold start before the first event) <= 1.5x `import boto3`. The
handler module's own import is reported too, and so is the floor the chosen libraries set:
importing boto3, pydantic (with the parts of it the models use), PyYAML, httpx and Powertools'
logger and metrics, and nothing of ours.

Run: .venv/bin/python bench/bench_coldstart.py [--runs 9]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent)]
from report import Row, finish, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"
ENV = {
    "ROUTES_FILE": str(ROOT / "layers" / "common" / "routes.yaml"),
    "QUOTA_TABLE": "q",
    "LEDGER_TABLE": "l",
    "INGEST_QUEUE_URL": "u",
    "REJECTED_BUCKET": "b",
    "CURSOR_TABLE": "c",
    "RECIPIENTS_BUCKET": "b",
    "AWS_DEFAULT_REGION": "eu-west-1",
}
TIMER = "import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
# What the first invocation adds: the domain package, boto3, and loading the routes file.
# The libraries the first invocation cannot do without, imported and nothing else.
LIBRARIES = (
    "import boto3, yaml, httpx; "
    "from pydantic import BaseModel, ConfigDict, Field, SecretStr, AfterValidator; "
    "from aws_lambda_powertools import Logger, Metrics"
)
FIRST_CALL = {
    "trigger": "import app; from trigger_relay.functions import trigger as f; "
    "f.check_configuration()",
    "recipients_sync": "import app; from trigger_relay.functions import recipients_sync as f; "
    "f.check_configuration()",
}


def install(target: Path, *requirements: str) -> None:
    if not (target / ".done").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                *requirements,
            ],
            check=True,
        )
        (target / ".done").touch()


def lambda_like_paths() -> list[Path]:
    import boto3

    runtime = CACHE / f"runtime-boto3-{boto3.__version__}"
    requirements = ROOT / "layers" / "common" / "requirements.txt"
    # a new pin gets a new directory: a cached layer must be the one requirements.txt describes
    pins = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    layer = CACHE / f"layer-{pins}"
    install(runtime, f"boto3=={boto3.__version__}")
    install(layer, "-r", str(requirements))
    return [ROOT / "layers" / "common", layer, runtime]


def time_code(code: str, cwd: Path, paths: list[Path]) -> float:
    env = {
        **ENV,
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join(str(p) for p in [cwd, *paths]),
    }
    answer = subprocess.run(
        [sys.executable, "-S", "-c", TIMER.format(code=code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(answer.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    paths = lambda_like_paths()
    timings: dict[str, list[float]] = {"boto3": []}
    for _ in range(runs):  # interleaved, so machine noise hits all alike
        timings["boto3"].append(time_code("import boto3", ROOT, paths))
        timings.setdefault("libraries", []).append(time_code(LIBRARIES, ROOT, paths))
        for function in ("trigger", "recipients_sync"):
            cwd = ROOT / "functions" / function
            timings.setdefault(function, []).append(time_code("import app", cwd, paths))
            timings.setdefault(f"{function} first", []).append(
                time_code(FIRST_CALL[function], cwd, paths)
            )
    base = statistics.median(timings["boto3"])
    rows = [Row("import boto3, median ms", round(base * 1000, 1))]
    for function in ("trigger", "recipients_sync"):
        median = statistics.median(timings[function])
        first = statistics.median(timings[f"{function} first"])
        rows.append(Row(f"{function} handler import, median ms", round(median * 1000, 1)))
        rows.append(Row(f"{function} handler import / boto3", round(median / base, 2)))
        rows.append(
            Row(f"{function} import + first-call setup / boto3", round(first / base, 2), "<= 1.5")
        )
    floor = statistics.median(timings["libraries"]) / base
    rows.append(Row("floor: the libraries alone / boto3", round(floor, 2)))
    finish(print_table(f"Cold start imports ({runs} fresh interpreters each)", rows))


if __name__ == "__main__":
    main()
