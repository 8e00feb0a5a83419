"""Which stack a command works on: the running local stack (default) or a deployed one by name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the local stack's code is imported only when a local stack is the target
    from trigger_relay_local.stack.local_stack import LocalStack

from trigger_relay_cli.repository import ROOT  # the checkout: local stacks live in it

LOCAL_STACKS = ROOT / ".local-stack"  # one directory per local stack, each locked while it runs
WORKDIR = LOCAL_STACKS / "up"  # `trigger-relay local up`, and the commands' default target
DEMO_WORKDIR = LOCAL_STACKS / "demo"  # `make demo`: beside a running `local up`, not on it
STATE_FILE = "stack.json"


class NoStack(RuntimeError):
    pass


@dataclass
class Target:
    name: str
    outputs: dict[str, str]
    local: LocalStack | None = None
    simulator_url: str | None = None

    def client(self, service: str) -> Any:
        if self.local is not None:
            return self.local.client(service)
        import boto3

        return boto3.client(service)  # type: ignore[call-overload]

    def run_sync(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run RecipientsSyncFunction once with this event and return its answer."""
        if self.local is not None:
            from trigger_relay_local.lambda_runtime.fleet import invoke

            return invoke(self.local, self.local.functions["RecipientsSyncFunction"], event)
        import boto3
        from botocore.config import Config

        from trigger_relay_cli.failures import Exit, UserError

        # A run may take the function's whole timeout (300 s). botocore's default read timeout
        # (60 s) would give up and invoke again: a second run, which the sync lease skips.
        patient = Config(read_timeout=330, retries={"max_attempts": 1})
        answer = boto3.client("lambda", config=patient).invoke(
            FunctionName=self.outputs["RecipientsSyncFunctionName"],
            Payload=json.dumps(event).encode(),
        )
        payload = json.loads(answer["Payload"].read())
        if answer.get("FunctionError"):
            raise UserError(
                f"the sync run failed: {payload.get('errorType', '')} "
                f"{payload.get('errorMessage', payload)}",
                "Its log group /aws/lambda/<stack>/RecipientsSyncFunction has the traceback.",
                Exit.FAILED,
            )
        return payload


def resolve(stack_name: str | None, workdir: Path = WORKDIR) -> Target:
    if stack_name:
        import boto3

        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        return Target(stack_name, outputs)
    state = workdir / STATE_FILE
    if not state.exists():
        raise NoStack(
            "no local stack is running: start one with `trigger-relay local up`, "
            "or name a deployed stack with --stack NAME"
        )
    from trigger_relay_local.stack.local_stack import LocalStack, aws_environment

    local = LocalStack.load(state)
    aws_environment(local.endpoint)  # the local stack takes the fake credentials
    simulator = json.loads(state.read_text()).get("simulator_url")
    return Target("local", local.outputs, local, simulator)
