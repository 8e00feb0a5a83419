"""Every AWS call a function's code made on the local stack, checked against the role the stack
gave that function - the check moto itself does not make."""

from __future__ import annotations

import ast
import fnmatch
import json
from typing import Any

from trigger_relay_local.lambda_runtime import aws_calls
from trigger_relay_local.lambda_runtime.fleet import calls_dir
from trigger_relay_local.stack.embedded import Embedded


def role_statements(env: Embedded, logical_id: str) -> list[dict[str, Any]]:
    """The Allow/Deny statements of the function's execution role, as created on the stack."""
    stack = env.stack
    function = stack.client("lambda").get_function(FunctionName=stack.functions[logical_id].name)
    role = function["Configuration"]["Role"].rsplit("/", 1)[-1]
    iam = stack.client("iam")
    statements: list[dict[str, Any]] = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        statements += _listed(_document(document)["Statement"])
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert not attached, "managed policies would need their documents here"
    return statements


def _document(value: Any) -> dict[str, Any]:
    """A policy document as moto returns it: parsed, JSON text, or (from CloudFormation) the
    Python text of the dict the template gave."""
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value)  # type: ignore[no-any-return]
    except json.JSONDecodeError:
        return ast.literal_eval(value)  # type: ignore[no-any-return]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(patterns: Any, value: str, *, case: bool) -> bool:
    if case:
        return any(fnmatch.fnmatchcase(value, p) for p in _listed(patterns))
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in _listed(patterns))


def allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """IAM's verdict for one request: an explicit Deny wins, else some Allow must match."""
    matching = [
        s
        for s in statements
        if _matches(s["Action"], action, case=False)
        and _matches(s["Resource"], resource, case=True)
    ]
    return any(s["Effect"] == "Allow" for s in matching) and not any(
        s["Effect"] == "Deny" for s in matching
    )


def check_calls(env: Embedded, logical_id: str) -> set[tuple[str, str]]:
    """Assert that the role allows every call the function made; returns the pairs checked."""
    account = env.stack.client("sts").get_caller_identity()["Account"]
    statements = role_statements(env, logical_id)
    calls = aws_calls.load(calls_dir(env.stack, env.stack.functions[logical_id]))
    assert calls, f"{logical_id} recorded no AWS calls"
    requests = {pair for call in calls for pair in aws_calls.iam_requests(call, account)}
    denied = sorted(pair for pair in requests if not allows(statements, *pair))
    assert not denied, f"{logical_id}'s role would refuse on AWS: {denied}"
    return requests


def unused_grants(
    statements: list[dict[str, Any]], requests: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The allowed (action in lower case, resource) pairs that none of the requests needed: a
    grant is used only where its action and its resource both matched some request."""
    return {
        (granted.lower(), resource)
        for s in statements
        if s["Effect"] == "Allow"
        for granted in _listed(s["Action"])
        for resource in _listed(s["Resource"])
        if not any(
            _matches(granted, action, case=False) and _matches(resource, arn, case=True)
            for action, arn in requests
        )
    }
