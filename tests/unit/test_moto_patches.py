"""The local stack's SQS fixes keep SQS's behaviour: the same receive, delete and visibility."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from tests.conftest import ROOT
from tests.helpers.moto_probes import PROBES
from trigger_relay_local.stack import moto_patches

# the fresh process imports the code under test as pytest does
PYTHONPATH = [str(ROOT / "layers" / "common"), str(ROOT / "local"), str(ROOT)]


@pytest.fixture
def sqs():
    moto_patches.apply()
    with mock_aws():
        client = boto3.client("sqs", region_name="eu-west-1")
        yield client


def _queue(sqs, name: str = "q", **attributes: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def _send(sqs, url: str, count: int) -> None:
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": str(n)}
                for i, n in enumerate(range(start, min(count, start + 10)))
            ],
        )


def _receive(sqs, url: str, visibility: int = 30) -> list[dict]:
    return sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility
    ).get("Messages", [])


def _counts(sqs, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_received_messages_stay_hidden_until_deleted_and_drain_exactly_once(sqs):
    url = _queue(sqs)
    _send(sqs, url, 2000)
    seen: list[str] = []
    while batch := _receive(sqs, url):
        seen += [m["Body"] for m in batch]
        answer = sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )
        assert len(answer["Successful"]) == len(batch) and not answer.get("Failed")
    assert sorted(seen, key=int) == [str(n) for n in range(2000)]
    assert _counts(sqs, url) == (0, 0)


def test_in_flight_messages_are_not_received_twice_and_are_counted(sqs):
    url = _queue(sqs)
    _send(sqs, url, 25)
    first, second = _receive(sqs, url), _receive(sqs, url)
    assert len(first) == len(second) == 10
    assert not {m["MessageId"] for m in first} & {m["MessageId"] for m in second}
    assert _counts(sqs, url) == (5, 20)


def test_deleting_twice_is_allowed_and_an_unknown_handle_is_refused(sqs):
    url = _queue(sqs)
    _send(sqs, url, 1)
    (message,) = _receive(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    with pytest.raises(sqs.exceptions.ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    assert _counts(sqs, url) == (0, 0)


def test_a_handle_from_another_queue_is_refused(sqs):
    one, other = _queue(sqs, "one"), _queue(sqs, "other")
    _send(sqs, one, 1)
    (message,) = _receive(sqs, one)
    with pytest.raises(sqs.exceptions.ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=other, ReceiptHandle=message["ReceiptHandle"])
    with pytest.raises(sqs.exceptions.ClientError, match="ReceiptHandleIsInvalid"):
        sqs.change_message_visibility(
            QueueUrl=other, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    assert _counts(sqs, one) == (0, 1)


def test_visibility_zero_returns_a_message_and_the_limit_is_checked(sqs):
    url = _queue(sqs)
    _send(sqs, url, 3)
    batch = _receive(sqs, url)
    answer = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "0", "ReceiptHandle": batch[0]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "1", "ReceiptHandle": batch[1]["ReceiptHandle"], "VisibilityTimeout": 43201},
        ],
    )
    assert [s["Id"] for s in answer["Successful"]] == ["0"]
    assert [f["Id"] for f in answer["Failed"]] == ["1"]
    again = _receive(sqs, url)
    assert [m["MessageId"] for m in again] == [batch[0]["MessageId"]]
    assert again[0]["ReceiptHandle"] != batch[0]["ReceiptHandle"]
    # the handle of the earlier receive still deletes the message, as in moto without the fix
    sqs.delete_message(QueueUrl=url, ReceiptHandle=batch[0]["ReceiptHandle"])
    assert _counts(sqs, url) == (0, 2)


def test_messages_received_too_often_go_to_the_dead_letter_queue(sqs):
    dlq = _queue(sqs, "dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = _queue(
        sqs,
        "main",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
    )
    _send(sqs, url, 4)
    for _ in range(2):
        assert len(_receive(sqs, url, visibility=0)) == 4
    assert _receive(sqs, url) == []
    assert _counts(sqs, url) == (0, 0)
    assert _counts(sqs, dlq) == (4, 0)


def test_long_poll_on_an_empty_queue_waits_and_returns_nothing(sqs):
    url = _queue(sqs)
    answer = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert "Messages" not in answer


def test_delayed_messages_are_neither_received_nor_counted_as_visible(sqs):
    url = _queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    _send(sqs, url, 1)
    assert [m["Body"] for m in _receive(sqs, url)] == ["0"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert attributes["ApproximateNumberOfMessages"] == "0"


def test_test_event_pattern_answers_as_the_local_bus_routes() -> None:
    """TestEventPattern agrees with PutEvents: an event the rule's pattern refuses is not
    delivered to its target, and one it passes is; an event without AWS's required fields is
    refused."""
    moto_patches.apply()
    with mock_aws():
        events = boto3.client("events", region_name="eu-west-1")
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = _queue(sqs, "ingest")
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        pattern = json.dumps({"source": [{"prefix": "app."}]})
        events.put_rule(Name="ingest", EventPattern=pattern)
        events.put_targets(Rule="ingest", Targets=[{"Id": "q", "Arn": arn}])
        base = {
            "id": "1",
            "account": "123456789012",
            "time": "2026-01-01T00:00:00Z",
            "region": "eu-west-1",
            "detail-type": "user.signed_up",
            "resources": [],
            "detail": {},
        }
        for source, passes in (("app.users", True), ("myapp.users", False)):
            event = {**base, "source": source}
            answer = events.test_event_pattern(EventPattern=pattern, Event=json.dumps(event))
            assert answer["Result"] is passes
            events.put_events(
                Entries=[{"Source": source, "DetailType": "user.signed_up", "Detail": "{}"}]
            )
            assert bool(_receive(sqs, url)) is passes
        with pytest.raises(events.exceptions.ClientError, match="ValidationException"):
            events.test_event_pattern(
                EventPattern=pattern, Event=json.dumps({"source": "app.users"})
            )


# What each patch corrects, measured with it and (in a fresh process) without it.
CORRECTS = {
    "serialise_dynamodb": (lambda fixed: fixed == 1, lambda plain: plain == 2),
    "fast_sqs_receive": (lambda fixed: fixed == 0, lambda plain: plain >= 10),
    "linear_sqs_drain": (lambda fixed: fixed <= 30, lambda plain: plain >= 500),
    "uncounted_sqs_send": (lambda fixed: fixed == 0, lambda plain: plain >= 1),
    "uncopied_put_transactions": (lambda fixed: fixed == 0, lambda plain: plain >= 1),
    "strict_sqs_limits": (lambda fixed: fixed is False, lambda plain: plain is True),
    "event_pattern_test": (lambda fixed: fixed is True, lambda plain: plain is False),
}


def test_every_patch_has_a_probe() -> None:
    assert set(moto_patches.PATCHES) == set(PROBES) == set(CORRECTS)


@pytest.mark.parametrize("name", sorted(CORRECTS))
def test_each_patch_changes_what_it_says_and_moto_alone_does_not(name: str) -> None:
    fixed, plain = CORRECTS[name]
    moto_patches.apply()
    with_patch = PROBES[name]()
    assert fixed(with_patch), f"{name} with the patch: {with_patch}"
    without = subprocess.run(
        [sys.executable, "-m", "tests.helpers.moto_probes", name],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(PYTHONPATH)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    measured = json.loads(without.stdout.strip().splitlines()[-1])
    assert plain(measured), f"{name} without the patch: {measured} (moto fixed it? drop the patch)"
