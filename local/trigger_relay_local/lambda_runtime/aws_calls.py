"""Which AWS calls a function's own code makes, and what IAM must allow for each of them.

moto does not check IAM, so a policy that misses an action (say ``dynamodb:BatchWriteItem``)
passes every local run and fails on AWS. The local execution environment therefore records each
call its handler makes - service, operation and the resource names, never the payload - and
``iam_requests`` turns a call into the (action, resource ARN) pairs IAM evaluates, for the
integration tests to check against the role the stack created. Calls made by the local event
source mapping (receive, delete) are outside the handler and are Lambda's, not the code's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_recording = {"on": False}  # process-wide: a handler's own threads count too

# Operations authorised by another action's name (the IAM service authorization reference).
_ACTION_OF = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
    ("s3", "CreateMultipartUpload"): "PutObject",
    ("s3", "UploadPart"): "PutObject",
    ("s3", "CompleteMultipartUpload"): "PutObject",
    ("s3", "HeadObject"): "GetObject",
    ("s3", "ListObjectsV2"): "ListBucket",
}

_TRANSACT_ACTION = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def record(directory: Path) -> None:
    """Append every AWS call made while a ``recorded`` handler runs to a JSON Lines file in
    directory."""
    from botocore.client import BaseClient

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{os.getpid()}.jsonl"
    original = BaseClient._make_api_call

    def make_api_call(self: Any, operation_name: str, params: dict[str, Any]) -> Any:
        if _recording["on"]:
            line = {
                "service": self.meta.service_model.service_name,
                "operation": operation_name,
                "region": self.meta.region_name,
                **_names(params),
            }
            with path.open("a") as out:
                out.write(json.dumps(line) + "\n")
        return original(self, operation_name, params)

    BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]


def recorded(handler: Callable[..., Any]) -> Callable[..., Any]:
    """The handler, with the calls it makes (and only those) recorded."""

    def run(event: Any, context: Any) -> Any:
        _recording["on"] = True
        try:
            return handler(event, context)
        finally:
            _recording["on"] = False

    return run


def _names(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that name a resource; nothing of the payload."""
    names: dict[str, Any] = {}
    for key in ("TableName", "QueueUrl", "Bucket", "Key", "SecretId"):
        if key in params:
            names[key] = params[key]
    if "RequestItems" in params:
        names["Tables"] = sorted(params["RequestItems"])
    if "TransactItems" in params:
        names["Transact"] = sorted(
            {
                (op, body["TableName"])
                for item in params["TransactItems"]
                for op, body in item.items()
            }
        )
    return names


def load(directory: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        calls += [json.loads(line) for line in path.read_text().splitlines() if line]
    return calls


def iam_requests(call: dict[str, Any], account: str) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM checks for one recorded call."""
    service, operation, region = call["service"], call["operation"], call["region"]
    action = f"{service}:{_ACTION_OF.get((service, operation), operation)}"
    if service == "dynamodb" and "Transact" in call:  # each part needs its own action
        return [
            (f"dynamodb:{_TRANSACT_ACTION[op]}", f"arn:aws:dynamodb:{region}:{account}:table/{t}")
            for op, t in call["Transact"]
        ]
    if service == "dynamodb":
        tables = call.get("Tables") or [call["TableName"]]
        return [(action, f"arn:aws:dynamodb:{region}:{account}:table/{t}") for t in tables]
    if service == "sqs":
        name = urlsplit(call["QueueUrl"]).path.rstrip("/").rsplit("/", 1)[-1]
        return [(action, f"arn:aws:sqs:{region}:{account}:{name}")]
    if service == "s3":
        key = call.get("Key")
        return [(action, f"arn:aws:s3:::{call['Bucket']}" + (f"/{key}" if key else ""))]
    if service == "secretsmanager":
        secret = call["SecretId"]
        if not secret.startswith("arn:"):  # a name: the ARN adds a dash and six characters
            secret = f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}-AbCdEf"
        return [(action, secret)]
    raise ValueError(f"no IAM mapping for {service}:{operation}")
