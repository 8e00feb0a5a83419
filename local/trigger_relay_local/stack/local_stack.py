"""The embedded local stack: moto in server mode as AWS, provisioned from template.yaml.

moto creates the template's resources, Lambda functions included, but runs Lambda code only
through Docker. So the stack disables the event source mappings it created (the local poller,
which reads their settings, is the queue's only consumer) and runs the handlers itself.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

from trigger_relay_cli.repository import ROUTES
from trigger_relay_local.stack.template import ROOT, check_rules, load_template, package, translate

REGION = "eu-west-1"
STACK_NAME = "trigger-relay-local"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any; nothing real is ever needed
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class FunctionSpec:
    """What the local runtime needs to run one function as Lambda would."""

    logical_id: str
    name: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    event_source: dict[str, Any] | None = None  # the (disabled) SQS mapping's settings


@dataclass
class LocalStack:
    endpoint: str
    outputs: dict[str, str]
    functions: dict[str, FunctionSpec]
    routes_file: Path
    workdir: Path
    resources: dict[str, str] = field(default_factory=dict)  # logical id -> physical id

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)  # type: ignore[call-overload]

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this stack with boto3."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def save(self, path: Path, **extra: str) -> None:
        document = {
            "endpoint": self.endpoint,
            "outputs": self.outputs,
            "routes_file": str(self.routes_file),
            "workdir": str(self.workdir),
            "resources": self.resources,
            **extra,
            "functions": {
                k: {**asdict(f), "code_dir": str(f.code_dir)} for k, f in self.functions.items()
            },
        }
        path.write_text(json.dumps(document, indent=2, default=str))

    @classmethod
    def load(cls, path: Path) -> LocalStack:
        document = json.loads(path.read_text())
        functions = {
            k: FunctionSpec(**{**f, "code_dir": Path(f["code_dir"])})
            for k, f in document["functions"].items()
        }
        return cls(
            document["endpoint"],
            document["outputs"],
            functions,
            Path(document["routes_file"]),
            Path(document["workdir"]),
            document["resources"],
        )


def aws_environment(endpoint: str) -> None:
    """Point this process's boto3 at the local stack, with fake credentials."""
    os.environ.update({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(name, None)


def local_routes(vendor_url: str, workdir: Path, source: Path = ROUTES) -> Path:
    """The routes file with every account pointed at the vendor simulator."""
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    for account in document.get("accounts", {}).values():
        account["base_url"] = vendor_url
    path = workdir / "routes.local.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def write_routes(
    path: Path,
    *,
    limits: dict[str, dict[str, dict[str, float]]] | None = None,
    recipients_sync: dict[str, Any] | None = None,
    source: Path = ROUTES,
) -> Path:
    """A copy of a routes file with accounts' limits ({account: {action: limit}}) and the sync
    section replaced: how tests and benchmarks scale the vendors' clocks down to seconds."""
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    for account, account_limits in (limits or {}).items():
        document["accounts"][account]["limits"] = account_limits
    if recipients_sync is not None:
        document["recipients_sync"] = recipients_sync
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def provision(
    endpoint: str,
    vendor_url: str,
    workdir: Path,
    parameters: dict[str, str] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    routes_source: Path = ROUTES,
) -> LocalStack:
    """Create the stack from template.yaml on the moto server at endpoint."""
    check_rules(load_template(), parameters)  # before anything is created, as CloudFormation
    aws_environment(endpoint)
    workdir.mkdir(parents=True, exist_ok=True)
    session = boto3.session.Session(region_name=REGION)
    s3 = session.client("s3", endpoint_url=endpoint)
    artifacts = "trigger-relay-artifacts"
    s3.create_bucket(
        Bucket=artifacts,
        CreateBucketConfiguration={"LocationConstraint": REGION},  # type: ignore[typeddict-item]
    )

    template = translate(package(load_template(), s3, artifacts), parameters or {})
    cloudformation = session.client("cloudformation", endpoint_url=endpoint)
    cloudformation.create_stack(
        StackName=STACK_NAME,
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()
        ],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = _wait_created(cloudformation)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in cloudformation.list_stack_resources(StackName=STACK_NAME)["StackResourceSummaries"]
        if "LogicalResourceId" in r
    }

    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint)
    for name, value in (secrets or {}).items():
        secretsmanager.create_secret(Name=name, SecretString=json.dumps(value))

    routes_file = local_routes(vendor_url, workdir, routes_source)
    functions = _functions(session, endpoint, template, resources, routes_file)
    return LocalStack(endpoint, outputs, functions, routes_file, workdir, resources)


def _wait_created(cloudformation: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return stack
        if status.endswith(("FAILED", "ROLLBACK_COMPLETE")) or time.monotonic() > deadline:
            raise RuntimeError(
                f"local stack not created: {status} {stack.get('StackStatusReason')}"
            )
        time.sleep(0.2)


def _functions(
    session: Any,
    endpoint: str,
    template: dict[str, Any],
    resources: dict[str, str],
    routes_file: Path,
) -> dict[str, FunctionSpec]:
    lambda_ = session.client("lambda", endpoint_url=endpoint)
    mappings = lambda_.list_event_source_mappings()["EventSourceMappings"]
    specs = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        name = resources[logical_id]
        config = lambda_.get_function_configuration(FunctionName=name)
        code_uri = load_template()["Resources"][logical_id]["Properties"]["CodeUri"]
        # Lambda's environment holds strings; CloudFormation turns a Number parameter into its
        # text, where moto keeps the template's number.
        environment = {
            name: str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in config.get("Environment", {}).get("Variables", {}).items()
        }
        environment["ROUTES_FILE"] = str(routes_file)
        mapping = next((m for m in mappings if m["FunctionArn"] == config["FunctionArn"]), None)
        if mapping is not None:
            # The poller is the only consumer: moto would otherwise try to run the code in Docker.
            lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=name,
            code_dir=ROOT / code_uri,
            handler=config["Handler"],
            timeout=int(config.get("Timeout", 3)),
            memory=int(config.get("MemorySize", 128)),
            environment=environment,
            event_source=mapping,
        )
    return specs
