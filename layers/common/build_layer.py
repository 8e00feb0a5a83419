"""Build the shared layer the way Lambda will load it: `sam build` runs this (the layer's
`BuildMethod: makefile`, see Makefile here) and bench/bench_coldstart.py measures its output.

Why not `BuildMethod: python3.13`: that builder unpacks wheels and copies our package without
compiling any of it, so the layer ships ~650 .py files and not one .pyc. Lambda loads layers
into /opt (https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html) and gives code
one writeable directory, /tmp ("Lambda isolation technologies", AWS Lambda security overview:
https://docs.aws.amazon.com/whitepapers/latest/security-overview-aws-lambda/lambda-isolation-technologies.html),
so Python can't cache what it compiles under /opt, and every cold start compiles
pydantic, httpx, Powertools and trigger_relay from source again: bench_coldstart measured the
first invocation at 3.8-4.1x `import boto3` that way, and 1.8-2.0x with this build.

Here, for the Lambda runtime's Python and architecture:
1. pip installs requirements.txt into python/, wheels only, for manylinux up to glibc 2.34
   (Amazon Linux 2023, which python3.13 runs on; the tags `sam build` itself uses);
2. the trigger_relay package and routes.yaml are copied beside them, caches left out;
3. everything is compiled with `--invalidation-mode unchecked-hash`. The default (timestamp)
   .pyc files record their source's mtime, which the zip and Lambda's extraction don't keep
   exactly, so they could be rejected and recompiled on every start; checked-hash hashes every
   source on import (measured ~50 ms slower here). Unchecked is right for an artefact nobody
   edits in place: a changed source means a new build. Code objects name /opt/python/... so
   tracebacks show the paths Lambda has.

Every requirement must publish a wheel for the runtime (pip builds no source-only package for
another platform); a build without a .pyc for every module fails.

Usage: python3.13 -I build_layer.py ARTIFACTS_DIR [--arch arm64|x86_64|host]
Runs on the standard library alone (it is the build, before anything is installed).
"""

from __future__ import annotations

import argparse
import compileall
import platform
import py_compile
import shutil
import subprocess  # nosec B404 - runs pip, nothing else
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNTIME = (3, 13)  # template.yaml: Runtime python3.13
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html: python3.13 runs on
# Amazon Linux 2023 (glibc 2.34), so manylinux wheels up to 2_34 load there.
MANYLINUX = ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_34")
MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
LAYER_ROOT = "/opt"  # https://docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def build(artifacts: Path, arch: str) -> Path:
    if sys.version_info[:2] != RUNTIME:
        raise SystemExit(
            f"the layer is compiled for python{RUNTIME[0]}.{RUNTIME[1]}, the functions' runtime; "
            f"this is {platform.python_version()}: put python3.13 on PATH (make creates .venv "
            "with it) or set PYTHON for this Makefile"
        )
    target = artifacts / "python"
    if target.exists():
        shutil.rmtree(target)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target"]
    pip += [str(target), "--requirement", str(HERE / "requirements.txt")]
    pip += ["--only-binary=:all:", "--disable-pip-version-check"]
    if arch != "host":
        machine = MACHINES[arch]
        pip += ["--implementation", "cp", "--python-version", "{}.{}".format(*RUNTIME)]
        for tag in MANYLINUX:
            pip += ["--platform", f"{tag}_{machine}"]
    try:
        subprocess.run(pip, check=True)  # noqa: S603  # nosec B603 - a fixed command line
    except subprocess.CalledProcessError:
        raise SystemExit(
            f"pip could not install requirements.txt for Lambda ({arch}, python3.13); every "
            "requirement must publish a wheel for it (pip builds no source-only package for "
            "another platform)"
        ) from None
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them
    shutil.copytree(HERE / "trigger_relay", target / "trigger_relay", ignore=CACHES)
    shutil.copy2(HERE / "routes.yaml", target / "routes.yaml")
    compiled = compileall.compile_dir(
        target,
        quiet=1,
        workers=0,
        optimize=0,  # Lambda runs python without -O: it reads <module>.cpython-313.pyc
        stripdir=str(artifacts),
        prependdir=LAYER_ROOT,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    missing = uncompiled(target)
    if not compiled or missing:
        raise SystemExit(
            f"compiling the layer failed: {len(missing)} modules without their .pyc, e.g. "
            f"{missing[:3]} (is sys.pycache_prefix set? {sys.pycache_prefix})"
        )
    return target


def uncompiled(target: Path) -> list[str]:
    """Modules without the .pyc python3.13 looks for beside them: it must be there, not under
    a pycache prefix, and hash-based unchecked (PEP 552 flags 0b01)."""
    missing = []
    for source in target.rglob("*.py"):
        tag = sys.implementation.cache_tag  # cpython-313
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        header = cached.read_bytes()[:8] if cached.exists() else b""
        if header[4:8] != b"\x01\0\0\0":
            missing.append(str(source.relative_to(target)))
    return sorted(missing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts")
    parser.add_argument("--arch", choices=[*MACHINES, "host"], default="arm64")
    args = parser.parse_args()
    if not args.artifacts.strip():
        parser.error("ARTIFACTS_DIR is empty: `sam build` gives one (python/ in it is replaced)")
    build(Path(args.artifacts).resolve(), args.arch)


if __name__ == "__main__":
    main()
