"""Package sizes after `sam build`: the shared layer unzipped, each function, and their sum
against Lambda's 250 MB limit for a function and its layers (unzipped).

Run: .venv/bin/python bench/bench_size.py   (needs python3.13 on PATH, as `sam build` does)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent)]
from report import Row, finish, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SAM_CLI_TELEMETRY": "0",
    }
    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp) / "build"
        subprocess.run(
            [
                str(bin_dir / "sam"),
                "build",
                "--build-dir",
                str(build),
                "--template-file",
                str(ROOT / "template.yaml"),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        layer = size(build / "SharedLayer")
        functions = {
            name: size(build / name) for name in ("TriggerFunction", "RecipientsSyncFunction")
        }
    rows = [Row("shared layer, unzipped (MiB)", round(layer / MIB, 1), "<= 50")]
    for name, value in functions.items():
        rows.append(Row(f"{name} package (KiB)", round(value / 1024, 1)))
        rows.append(
            Row(
                f"{name} + layer (MiB, Lambda limit 250)", round((value + layer) / MIB, 1), "<= 250"
            )
        )
    finish(print_table("Package sizes after sam build", rows))


if __name__ == "__main__":
    main()
