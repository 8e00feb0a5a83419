"""Re-enqueueing inside SQS's documented limits, on the local stack's strict SQS."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from trigger_relay.functions import clients
from trigger_relay.functions import trigger as service
from trigger_relay.pipeline.queue_messages import (
    HANDLING_ATTRIBUTE,
    Attribute,
    Handling,
    Outgoing,
    QueueWriter,
    unwrap,
)
from trigger_relay.pipeline.relay import BatchReport, InboundRecord, Status
from trigger_relay_local.stack import moto_patches

MiB = 1024 * 1024


@pytest.fixture
def sqs():
    moto_patches.apply()
    with mock_aws():
        client = boto3.client("sqs", region_name="eu-west-1")
        client.create_queue(QueueName="q")
        yield client


def _url(sqs) -> str:
    return sqs.get_queue_url(QueueName="q")["QueueUrl"]


class Recording:
    """An SQS client that records each SendMessageBatch before passing it on."""

    def __init__(self, client) -> None:
        self._client = client
        self.batches: list[list[dict]] = []

    def send_message_batch(self, **kwargs):
        self.batches.append(kwargs["Entries"])
        return self._client.send_message_batch(**kwargs)


def test_the_strict_local_sqs_refuses_what_aws_refuses(sqs) -> None:
    url = _url(sqs)
    eleven = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}
    with pytest.raises(ClientError, match="exceeds the allowed maximum"):
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=eleven)
    # a body just under 1 MiB plus an attribute is over it: attributes count
    attribute = {"a": {"DataType": "String", "StringValue": "v" * 100}}
    with pytest.raises(ClientError, match="shorter than"):
        sqs.send_message(QueueUrl=url, MessageBody="x" * (MiB - 10), MessageAttributes=attribute)
    # bytes, not characters
    with pytest.raises(ClientError, match="shorter than"):
        sqs.send_message(QueueUrl=url, MessageBody="é" * (MiB // 2 + 1))
    # ten messages of 200 KB are over the batch's 1 MiB
    entries = [{"Id": str(i), "MessageBody": "x" * 200_000} for i in range(10)]
    with pytest.raises(ClientError, match="BatchRequestTooLong"):
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    with pytest.raises(ClientError, match="Invalid binary character"):
        sqs.send_message(QueueUrl=url, MessageBody="a\x00b")


def test_the_writer_splits_batches_by_measured_size_and_count(sqs) -> None:
    recording = Recording(sqs)
    writer = QueueWriter(recording, _url(sqs))
    messages = [Outgoing("x" * 200_000) for _ in range(10)] + [Outgoing("small") for _ in range(12)]
    assert writer.send(messages) == {}
    sizes = [sum(len(e["MessageBody"]) for e in batch) for batch in recording.batches]
    assert all(size <= MiB for size in sizes)
    assert all(len(batch) <= 10 for batch in recording.batches)
    assert sum(len(batch) for batch in recording.batches) == 22
    assert [len(b) for b in recording.batches] == [5, 10, 7]  # 5 large; 5 large + 5 small; 7
    received = 0
    while True:
        got = sqs.receive_message(QueueUrl=_url(sqs), MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        received += len(got)
        for m in got:
            sqs.delete_message(QueueUrl=_url(sqs), ReceiptHandle=m["ReceiptHandle"])
    assert received == 22


def test_an_oversized_message_fails_alone_and_the_rest_are_sent(sqs) -> None:
    writer = QueueWriter(sqs, _url(sqs))
    failed = writer.send([Outgoing("a"), Outgoing("x" * MiB), Outgoing("b")])
    assert list(failed) == [1] and "over SQS's" in failed[1]


def test_delays_are_clamped_to_what_sqs_allows(sqs) -> None:
    recording = Recording(sqs)
    QueueWriter(recording, _url(sqs)).send(
        [Outgoing("a", delay_seconds=5000), Outgoing("b", delay_seconds=-3)]
    )
    assert [e["DelaySeconds"] for e in recording.batches[0]] == [900, 0]


def test_refused_entries_are_reported_per_message() -> None:
    class Refusing:
        def send_message_batch(self, **kwargs):
            return {
                "Successful": [{"Id": "0"}],
                "Failed": [{"Id": "1", "Code": "InternalError", "SenderFault": False}],
            }

    assert QueueWriter(Refusing(), "url").send([Outgoing("a"), Outgoing("b")]) == {
        1: "SQS refused: InternalError"
    }


def test_handling_travels_in_one_attribute_or_in_an_envelope() -> None:
    handling = Handling("evt-1", 2, 1_700_000_000.0)
    few = {"k": Attribute("Number", "7"), "b": Attribute("Binary", binary_value=b"\x00")}
    body, attributes = Outgoing("{}", few, handling).wire()
    assert body == "{}" and set(attributes) == {"k", "b", HANDLING_ATTRIBUTE}
    assert unwrap(body, attributes).handling == handling
    ten = {f"a{i}": Attribute("String", str(i)) for i in range(10)}
    body, attributes = Outgoing('{"type": "x"}', ten, handling).wire()
    assert attributes == {}
    back = unwrap(body, attributes)
    assert (back.body, back.attributes, back.handling) == ('{"type": "x"}', ten, handling)
    # a producer's body that merely looks like an envelope stays the producer's
    odd = '{"trigger_relay_envelope": 1}'
    assert unwrap(odd, {}).body == odd


def test_a_direct_invocation_that_cannot_be_requeued_fails_loudly(monkeypatch) -> None:
    """EventBridge invoked the function directly; SQS refused the re-queue of a record that must
    come back: the invocation fails, so Lambda retries it, instead of losing the event."""
    monkeypatch.setenv("ROUTES_FILE", "layers/common/routes.yaml")
    for name in ("QUOTA_TABLE", "LEDGER_TABLE", "INGEST_QUEUE_URL", "REJECTED_BUCKET"):
        monkeypatch.setenv(name, "x")
    sent = []

    class Refusing:
        def send_message_batch(self, **kwargs):
            sent.extend(kwargs["Entries"])
            return {"Failed": [{"Id": "0", "Code": "KMS.ThrottlingException"}]}

    monkeypatch.setattr(clients, "aws", lambda service_name: Refusing())
    event = {"id": "eb-1", "detail-type": "t", "source": "s", "detail": {"idempotency_key": "k9"}}
    record = service.eventbridge_as_record(event)
    report = BatchReport({record.record_id: Status.RETRY}, {}, 0, 0)
    with pytest.raises(service.NotRequeued, match=r"KMS\.ThrottlingException"):
        service.park_unsent(report, [record])
    carried = json.loads(sent[0]["MessageAttributes"][HANDLING_ATTRIBUTE]["StringValue"])
    assert carried["id"] == "k9"  # the event's identity, as the ledger knows it


def test_records_parse_every_attribute_type_from_a_lambda_event() -> None:
    event = {
        "Records": [
            {
                "messageId": "m1",
                "body": "{}",
                "attributes": {"SentTimestamp": "1700000000000"},
                "messageAttributes": {
                    "n": {"dataType": "Number", "stringValue": "42"},
                    "b": {"dataType": "Binary", "binaryValue": "AAE="},
                    "s": {"dataType": "String.label", "stringValue": "v"},
                },
            }
        ]
    }
    (record,) = service.sqs_records(event)
    assert isinstance(record, InboundRecord)
    assert record.attributes["b"].binary_value == b"\x00\x01"
    assert record.text_attributes() == {"n": "42", "s": "v"}
    assert record.handling.first_seen == 1_700_000_000.0


def test_records_deferred_together_travel_as_bundles_within_sqs_limits(sqs) -> None:
    """Every member comes back whole (body, every attribute type, Handling); bundles stay
    under SQS's 1 MiB, measured as SQS measures, and a message alone is not bundled."""
    url = _url(sqs)
    attributes = {"n": Attribute("Number", "7"), "b": Attribute("Binary", binary_value=b"\x00\xff")}
    members = [
        Outgoing(
            json.dumps({"i": i, "pad": "é" * 3000}, ensure_ascii=False),
            attributes,
            Handling(f"evt-{i}", 1, 1_700_000_000.0 + i, ("r1",)),
        )
        for i in range(600)
    ]
    packed = Outgoing.bundles(members)
    assert len(packed) >= 4  # 600 x ~6 KB does not fit in one message
    assert [i for _, indexes in packed for i in indexes] == list(range(600))
    assert QueueWriter(sqs, url).send([message for message, _ in packed]) == {}
    back = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages"):
        for message in messages:
            back += service.sqs_records(
                {"Records": [{"messageId": message["MessageId"], "body": message["Body"]}]}
            )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(json.loads(r.body)["i"] for r in back) == list(range(600))
    one = next(r for r in back if json.loads(r.body)["i"] == 3)
    assert one.attributes == attributes
    assert one.handling == Handling("evt-3", 1, 1_700_000_003.0, ("r1",))
    assert one.message_id is not None and one.record_id.startswith(one.message_id)
    # alone, a message is sent as itself
    ((single, indexes),) = Outgoing.bundles(members[:1])
    assert single is members[0] and indexes == [0]
    # a producer's body that merely looks like a bundle stays the producer's
    (odd,) = service.sqs_records(
        {"Records": [{"messageId": "m", "body": '{"trigger_relay_bundle": 1}'}]}
    )
    assert odd.body == '{"trigger_relay_bundle": 1}' and odd.message_id is None


def test_a_bundle_is_returned_to_sqs_whole_only_when_its_records_cannot_be_requeued() -> None:
    records = [InboundRecord(f"m1:{n}", "{}", message_id="m1") for n in range(3)]
    records.append(InboundRecord("m2", "{}"))
    report = BatchReport(
        statuses={
            "m1:0": Status.DELIVERED,
            "m1:1": Status.RETRY,
            "m1:2": Status.RETRY,
            "m2": Status.RETRY,
        },
        reasons={},
        calls=0,
        recipients=0,
        message_ids={r.record_id: r.message_id for r in records if r.message_id},
    )
    assert report.partial_batch_response() == {
        "batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]
    }
