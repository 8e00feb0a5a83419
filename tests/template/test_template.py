"""template.yaml: the linters and `sam build` are clean, and the promises we make hold in it."""

from __future__ import annotations

import marshal
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.conftest import ROOT

TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


def test_cfn_lint_is_clean() -> None:
    result = run(tool("cfn-lint"), str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_is_clean() -> None:
    result = run(tool("sam"), "validate", "--template-file", str(TEMPLATE), "--region", "eu-west-1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_validate_lint_is_clean() -> None:
    result = run(
        tool("sam"), "validate", "--lint", "--template-file", str(TEMPLATE), "--region", "eu-west-1"
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_sam_build_succeeds(tmp_path: Path) -> None:
    assert shutil.which("python3.13", path=f"{BIN}{os.pathsep}{os.environ['PATH']}"), (
        "sam build needs the python3.13 runtime on PATH (make creates .venv with it)"
    )
    build = tmp_path / "build"
    result = run(tool("sam"), "build", "--template-file", str(TEMPLATE), "--build-dir", str(build))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    layer = build / "SharedLayer" / "python"
    assert (layer / "trigger_relay" / "pipeline" / "relay.py").exists()
    assert (layer / "routes.yaml").exists()
    assert list((layer / "pydantic_core").glob("*aarch64*.so")), (
        "layer built for the wrong architecture"
    )
    assert (build / "TriggerFunction" / "app.py").exists()
    assert_compiled_for_lambda(layer)


def assert_compiled_for_lambda(layer: Path) -> None:
    """Every module has the .pyc python3.13 will load from a read-only /opt: its cache tag,
    hash-based and unchecked (flags 0b01, PEP 552), naming the path Lambda has."""
    sources = [p for p in layer.rglob("*.py") if "__pycache__" not in p.parts]
    assert len(sources) > 500, "the layer's dependencies are missing"
    missing = []
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not cached.exists():
            missing.append(str(source.relative_to(layer)))
            continue
        header = cached.read_bytes()[:16]
        assert int.from_bytes(header[4:8], "little") == 0b01, f"{cached}: not unchecked-hash"
    assert not missing, f"{len(missing)} modules without .pyc, e.g. {missing[:5]}"
    relay = layer / "trigger_relay" / "pipeline" / "__pycache__" / "relay.cpython-313.pyc"
    code = marshal.loads(relay.read_bytes()[16:])
    assert code.co_filename == "/opt/python/trigger_relay/pipeline/relay.py"


def test_the_layer_build_refuses_modules_lambda_would_compile(tmp_path: Path) -> None:
    """build_layer.py's last check: a module without a .pyc, or with one python would check
    against its source's mtime (which the zip and Lambda's unpacking don't keep), is named."""
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    try:
        from build_layer import uncompiled
    finally:
        sys.path.remove(str(ROOT / "layers" / "common"))
    for name in ("fine", "timestamped", "bare"):
        (tmp_path / f"{name}.py").write_text("x = 1\n")
    modes = {"fine": "UNCHECKED_HASH", "timestamped": "TIMESTAMP"}
    for name, mode in modes.items():
        py_compile.compile(
            str(tmp_path / f"{name}.py"),
            cfile=str(tmp_path / "__pycache__" / f"{name}.{sys.implementation.cache_tag}.pyc"),
            invalidation_mode=py_compile.PycInvalidationMode[mode],
        )
    assert uncompiled(tmp_path) == ["bare.py", "timestamped.py"]


def test_layer_build_matches_the_template(template: dict[str, Any]) -> None:
    """The layer's Makefile builds for the architecture the template gives the layer and the
    functions, and its target is the one `sam build` calls (build-<logical id>)."""
    layer = template["Resources"]["SharedLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    makefile = (ROOT / layer["Properties"]["ContentUri"] / "Makefile").read_text()
    assert "build-SharedLayer:" in makefile
    arch = layer["Metadata"]["BuildArchitecture"]
    assert f"ARCH ?= {arch}\n" in makefile
    assert layer["Properties"]["CompatibleArchitectures"] == [arch]
    # build_layer.py compiles for python3.13, the runtime of the layer and of the functions
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"
    for name, function in resources(template, "AWS::Serverless::Function").items():
        architectures = function["Properties"].get(
            "Architectures", template["Globals"]["Function"].get("Architectures")
        )
        assert architectures == [arch], name


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_queues_tables_and_bucket_are_encrypted(template: dict[str, Any]) -> None:
    for name, queue in resources(template, "AWS::SQS::Queue").items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, name
    for name, table in resources(template, "AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props["SSESpecification"]["SSEEnabled"] is True, name
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
    bucket = template["Resources"]["RecipientsBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def test_bucket_and_queues_refuse_plain_http(template: dict[str, Any]) -> None:
    for policy in ("RecipientsBucketPolicy", "IngestQueuePolicy"):
        statements = template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        ), policy


def test_no_wildcard_actions_on_data(template: dict[str, Any]) -> None:
    for name, function in resources(template, "AWS::Serverless::Function").items():
        for policy in function["Properties"].get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                actions = (
                    statement["Action"]
                    if isinstance(statement["Action"], list)
                    else [statement["Action"]]
                )
                assert not any(a == "*" or a.endswith(":*") for a in actions), (name, actions)
                assert statement["Resource"] != "*", name


def test_sqs_event_source_is_set_for_200_recipient_calls(template: dict[str, Any]) -> None:
    source = template["Resources"]["TriggerFunction"]["Properties"]["Events"]["Ingest"][
        "Properties"
    ]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumConcurrency" in source["ScalingConfig"]
    assert template["Parameters"]["TriggerBatchSize"]["Default"] % 200 == 0
    queue = template["Resources"]["IngestQueue"]["Properties"]
    timeout = template["Resources"]["TriggerFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] == 6 * timeout
    assert "deadLetterTargetArn" in queue["RedrivePolicy"]


def test_functions_run_python_3_13_with_log_retention(template: dict[str, Any]) -> None:
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"
    groups = resources(template, "AWS::Logs::LogGroup")
    for name in resources(template, "AWS::Serverless::Function"):
        assert f"{name}LogGroup" in groups
