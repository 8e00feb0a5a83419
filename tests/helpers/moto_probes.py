"""Probes of moto's behaviour, one per local-stack patch: each measures the thing the patch
corrects, so a test can run it with the patch and without it (in a fresh process, where
``moto_patches.apply(skip={name})`` leaves that one out) and see the difference.

Run as ``python -m tests.helpers.moto_probes NAME`` (the patch named is skipped) it prints the
probe's result as JSON.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto import mock_aws

from tests.helpers.offline import create_table

REGION = "eu-west-1"


@contextmanager
def _counting(owner: Any, name: str) -> Iterator[list[int]]:
    """Count reads of a property (or calls of a function) on owner while inside."""
    original = owner.__dict__[name]
    count = [0]
    if isinstance(original, property):
        getter = original.fget

        def read(self: Any) -> Any:
            count[0] += 1
            return getter(self)  # type: ignore[misc]

        setattr(owner, name, property(read))
    else:

        def call(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return original(*args, **kwargs)

        setattr(owner, name, call)
    try:
        yield count
    finally:
        setattr(owner, name, original)


def _queue(sqs: Any, messages: int) -> str:
    url: str = sqs.create_queue(QueueName="probe")["QueueUrl"]
    for start in range(0, messages, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(start, start + 10)],
        )
    return url


def serialise_dynamodb() -> int:
    """The most DynamoDB requests moto was applying at the same time (two threads, each one
    slow UpdateItem)."""
    from moto.dynamodb.models import DynamoDBBackend

    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, "t", "pk")
        original = DynamoDBBackend.update_item
        inside, most, lock = [0], [0], threading.Lock()

        def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.2)
            with lock:
                inside[0] -= 1
            return original(self, *args, **kwargs)

        DynamoDBBackend.update_item = slow  # type: ignore[method-assign]
        try:
            start = threading.Barrier(2)

            def update() -> None:
                start.wait()
                client.update_item(
                    TableName="t",
                    Key={"pk": {"S": "k"}},
                    UpdateExpression="ADD n :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )

            threads = [threading.Thread(target=update) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            DynamoDBBackend.update_item = original  # type: ignore[method-assign]
        return most[0]


def fast_sqs_receive() -> int:
    """How often one ReceiveMessage of 10 computed the queue's whole attribute set."""
    from moto.sqs import models

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = _queue(sqs, 50)
        with _counting(models.Queue, "attributes") as count:
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        return count[0]


def linear_sqs_drain() -> int:
    """How many messages were looked at, on a queue of 500, to receive 10, change one's
    visibility and delete all 10: each receipt handle should lead to its message."""
    from moto.sqs import models

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = _queue(sqs, 500)
        with (
            _counting(models.Message, "visible") as looked,
            _counting(models.Message, "had_receipt_handle") as compared,
        ):
            handles = [
                m["ReceiptHandle"]
                for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            ]
            for handle in handles:  # each lookup by handle, not by scanning the queue
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=60
                )
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(handles)],
            )
        return looked[0] + compared[0]


def uncounted_sqs_send() -> int:
    """How often one SendMessage listed the queue's visible messages (to count them)."""
    from moto.sqs import models

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = _queue(sqs, 100)
        with _counting(models.Queue, "messages") as count:
            sqs.send_message(QueueUrl=url, MessageBody="x")
        return count[0]


def uncopied_put_transactions() -> int:
    """How many deep copies one TransactWriteItems of two conditional puts made."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, "t", "id")
        with _counting(copy, "deepcopy") as count:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": "t",
                            "Item": {"id": {"S": key}},
                            "ConditionExpression": "attribute_not_exists(id)",
                        }
                    }
                    for key in ("a", "b")
                ]
            )
        return count[0]


def strict_sqs_limits() -> bool:
    """Whether SQS took a message with 11 attributes (AWS allows 10)."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = _queue(sqs, 0)
        attributes = {f"a{n}": {"DataType": "String", "StringValue": "v"} for n in range(11)}
        try:
            sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attributes)
        except sqs.exceptions.ClientError:
            return False
        return True


def event_pattern_test() -> bool:
    """Whether TestEventPattern answered with a ``Result``, as AWS does."""
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        event = {
            "id": "1",
            "account": "123456789012",
            "source": "app.users",
            "time": "2026-01-01T00:00:00Z",
            "region": REGION,
            "resources": [],
            "detail-type": "x",
            "detail": {},
        }
        answer = events.test_event_pattern(
            EventPattern=json.dumps({"source": ["app.users"]}), Event=json.dumps(event)
        )
        return "Result" in answer


PROBES: dict[str, Callable[[], Any]] = {
    name: globals()[name]
    for name in (
        "serialise_dynamodb",
        "fast_sqs_receive",
        "linear_sqs_drain",
        "uncounted_sqs_send",
        "uncopied_put_transactions",
        "strict_sqs_limits",
        "event_pattern_test",
    )
}


if __name__ == "__main__":
    from trigger_relay_local.stack import moto_patches

    skipped = sys.argv[1]
    moto_patches.apply(skip={skipped})
    print(json.dumps(PROBES[skipped]()))
