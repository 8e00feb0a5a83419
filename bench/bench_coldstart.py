"""Cold start: the whole first invocation's setup, as a ratio to `import boto3` alone.

Measured as Lambda runs it: fresh interpreters without site-packages (`python -S`), with only
boto3 (the runtime's) and the shared layer on the path, and nothing written back (Lambda's
/opt and /var/task are read-only, so Python can't cache bytecode it compiles there). The
layer is built by the same layers/common/build_layer.py that `sam build` runs, for this
machine's architecture. Every measure is timed once a round, in rounds repeated; a ratio is
the median of each round's ratio to that round's `import boto3`.

Target: the handler's import plus its first-call setup (the domain package, boto3, the routes
file: the whole cold start before the first event) <= 1.5x `import boto3`. Reported too: the
handler module's own import; the same first invocation with the layer as `BuildMethod:
python3.13` built it (no .pyc, so everything compiled on every cold start); what Altcraft's
package would add to a Zoho-only start if vendors were not imported lazily; and the floor the
chosen libraries set: boto3, pydantic (with the parts of it the models use), PyYAML, httpx and
Powertools' logger and metrics, and nothing of ours.

Run: .venv/bin/python bench/bench_coldstart.py [--runs 9]   (needs python3.13, as sam build)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent)]
from report import Row, finish, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"
LAYER_SOURCE = ROOT / "layers" / "common"
ENV = {
    "QUOTA_TABLE": "q",
    "LEDGER_TABLE": "l",
    "INGEST_QUEUE_URL": "u",
    "REJECTED_BUCKET": "b",
    "CURSOR_TABLE": "c",
    "RECIPIENTS_BUCKET": "b",
    "AWS_DEFAULT_REGION": "eu-west-1",
}
TIMER = "{setup}\nimport time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
# What the first invocation adds: the domain package, boto3, and loading the routes file.
# The libraries the first invocation cannot do without, imported and nothing else.
LIBRARIES = (
    "import boto3, yaml, httpx; "
    "from pydantic import BaseModel, ConfigDict, Field, SecretStr, AfterValidator; "
    "from aws_lambda_powertools import Logger, Metrics"
)
OTHER_VENDOR = "import trigger_relay.vendors.altcraft"
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


def lambda_like_paths(scratch: Path) -> dict[str, list[Path]]:
    """The path of each world measured: the runtime's boto3 (compiled, as the runtime image
    ships it) under the layer as built now, and as it was built without .pyc files."""
    import boto3

    runtime = CACHE / f"runtime-boto3-{boto3.__version__}"
    install(runtime, f"boto3=={boto3.__version__}")
    built = scratch / "built"
    subprocess.run(
        [sys.executable, str(LAYER_SOURCE / "build_layer.py"), str(built), "--arch", "host"],
        check=True,
    )
    bare = scratch / "bare"
    shutil.copytree(built, bare, ignore=shutil.ignore_patterns("__pycache__"))
    return {"built": [built / "python", runtime], "bare": [bare / "python", runtime]}


def function_dirs(scratch: Path) -> dict[str, Path]:
    """Each handler alone in a directory, as /var/task has it: no __pycache__ from the tests."""
    dirs = {}
    for function in FIRST_CALL:
        dirs[function] = scratch / "functions" / function
        dirs[function].mkdir(parents=True)
        shutil.copy2(ROOT / "functions" / function / "app.py", dirs[function])
    return dirs


def time_code(code: str, cwd: Path, paths: list[Path], setup: str = "") -> float:
    """Seconds `code` takes in a fresh interpreter, after `setup` (not timed)."""
    env = {
        **ENV,
        "ROUTES_FILE": str(paths[0] / "routes.yaml"),  # /opt/python/routes.yaml in Lambda
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join(str(p) for p in [cwd, *paths]),
        "PYTHONDONTWRITEBYTECODE": "1",  # read-only, as /opt and /var/task are
    }
    answer = subprocess.run(
        [sys.executable, "-S", "-c", TIMER.format(setup=setup, code=code)],
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
    if sys.version_info[:2] != (3, 13):
        raise SystemExit("run with the functions' runtime, python3.13 (.venv has it)")
    with tempfile.TemporaryDirectory() as tmp:
        worlds = lambda_like_paths(Path(tmp))
        dirs = function_dirs(Path(tmp))
        built = worlds["built"]
        timings: dict[str, list[float]] = {}
        for _ in range(runs):  # interleaved, so machine noise hits all alike
            timings.setdefault("boto3", []).append(time_code("import boto3", ROOT, built))
            timings.setdefault("libraries", []).append(time_code(LIBRARIES, ROOT, built))
            for function, code in FIRST_CALL.items():
                cwd = dirs[function]
                timings.setdefault(function, []).append(time_code("import app", cwd, built))
                timings.setdefault(f"{function} first", []).append(time_code(code, cwd, built))
            bare = time_code(FIRST_CALL["trigger"], dirs["trigger"], worlds["bare"])
            timings.setdefault("trigger first, no pyc", []).append(bare)
            # what a Zoho-only routes file no longer imports (vendors/registry.py)
            other = time_code(OTHER_VENDOR, dirs["trigger"], built, setup=FIRST_CALL["trigger"])
            timings.setdefault("other vendor", []).append(other)
    # each round's ratio to the boto3 import timed just before it, then their median: the
    # machine's slow and fast spells hit both sides of a ratio alike
    ratio = {
        name: statistics.median(t / base for t, base in zip(times, timings["boto3"], strict=True))
        for name, times in timings.items()
    }
    rows = [Row("import boto3, median ms", round(statistics.median(timings["boto3"]) * 1000, 1))]
    for function in FIRST_CALL:
        median = statistics.median(timings[function])
        rows.append(Row(f"{function} handler import, median ms", round(median * 1000, 1)))
        rows.append(Row(f"{function} handler import / boto3", round(ratio[function], 2)))
        rows.append(
            Row(
                f"{function} import + first-call setup / boto3",
                round(ratio[f"{function} first"], 2),
                "<= 1.5",
            )
        )
    rows.append(
        Row(
            "trigger first invocation, layer without .pyc (BuildMethod python3.13) / boto3",
            round(ratio["trigger first, no pyc"], 2),
        )
    )
    rows.append(
        Row(
            "Altcraft's package, not imported for a Zoho-only routes file / boto3",
            round(ratio["other vendor"], 2),
        )
    )
    rows.append(Row("floor: the libraries alone / boto3", round(ratio["libraries"], 2)))
    finish(print_table(f"Cold start imports ({runs} fresh interpreters each)", rows))


if __name__ == "__main__":
    main()
