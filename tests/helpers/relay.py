"""A relay on moto (in process) with vendors in an httpx transport, for exactly-once tests.

Real ledger, quota, queue, buckets, VendorCaller and pipeline; a fake clock for the parts that
read one; the vendors are small fakes that count what they *acted on*, so a test can prove
"launched at most once" by counting, whatever the relay believed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
from moto import mock_aws

from tests.helpers.offline import create_table
from trigger_relay.functions import trigger as service
from trigger_relay.pipeline.relay import BatchReport, InboundRecord, TriggerPipeline
from trigger_relay.pipeline.routes import RoutesFile, parse_routes
from trigger_relay.pipeline.vendor_calls import VendorCaller
from trigger_relay.stores.credentials import Credentials, MintedTokens
from trigger_relay.stores.ledger import DeliveryLedger
from trigger_relay.stores.parking import (
    REJECTED_PREFIX,
    UNCERTAIN_PREFIX,
    DeferralLimit,
    Deferrals,
    RejectedStore,
)
from trigger_relay.stores.quota import QuotaGate
from trigger_relay.stores.tickets import SlotTickets
from trigger_relay_local.lambda_runtime.poller import lambda_record
from trigger_relay_local.stack import moto_patches

REGION = "eu-west-1"
ALTCRAFT_TOKEN = "altcraft-secret-token"
SECRETS = {"trigger-relay/altcraft": {"token": ALTCRAFT_TOKEN}}

ACCOUNTS = """
accounts:
  ac: {vendor: altcraft, secret: trigger-relay/altcraft, base_url: "https://ac.example.com"}
routes:
"""


def route(
    name: str,
    action: str,
    params: str,
    *,
    account: str = "ac",
    match: str = "{type: user.signed_up}",
    mapping: str = "{email: user.email}",
    extra: str = "",
) -> str:
    """One route of a routes file, in YAML; ``extra`` adds keys such as ``delivery: ...``."""
    lines = [
        f"  - name: {name}",
        f"    match: {match}",
        f"    action: {action}",
        f"    account: {account}",
        f"    params: {params}",
        f"    mapping: {mapping}",
    ]
    return "\n".join(lines + ([f"    {extra}"] if extra else [])) + "\n"


LAUNCH = route("welcome-launch", "altcraft.trigger", "{id: 84}")
LINK = route(
    "welcome-link", "altcraft.trigger_link", '{link: "https://trk.example.com/trg/465ea6fe"}'
)
ALTCRAFT_ROUTES = ACCOUNTS + LAUNCH + LINK


class Clock:
    """Starts at the real time: SQS stamps messages with it (SentTimestamp)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeAltcraft:
    """Altcraft's launch v1.1 and v1.0 link. ``faults`` is consumed one per request: None
    answers normally; "accept_then_timeout" launches, then the answer never comes;
    "connect_refused" never reaches it; any httpx.Response is answered as it is (and does not
    launch)."""

    launched: list[tuple[str, str]] = field(default_factory=list)
    faults: list[Any] = field(default_factory=list)
    requests: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault == "connect_refused":
            raise httpx.ConnectError("connection refused", request=request)
        if isinstance(fault, httpx.Response):
            return fault
        if request.url.path.startswith("/trg/"):
            self.launched.append(("link", request.url.path.rsplit("/", 1)[1]))
        else:
            document = json.loads(request.content)
            assert document["token"] == ALTCRAFT_TOKEN
            if "data" in document:  # bulk launch
                trigger = str(document["trigger_id"])
                self.launched += [
                    (trigger, str(item.get("email") or item.get("field_value")))
                    for item in document["data"]
                ]
            else:
                self.launched.append((str(document["id"]), document.get("email", "")))
        if fault == "accept_then_timeout":
            raise httpx.ReadTimeout("the answer never came", request=request)
        return httpx.Response(200, json={"error": 0, "error_text": "Successful operation"})


@dataclass
class Relay:
    aws: dict[str, Any]
    routes: RoutesFile
    vendor: Callable[[httpx.Request], httpx.Response]
    clock: Clock
    secrets: dict[str, dict[str, str]] = field(default_factory=lambda: dict(SECRETS))
    deferral_limit: DeferralLimit = field(default_factory=DeferralLimit)
    # book slots ahead for records sent back to the queue, as the trigger function does
    tickets: bool = False
    gathering_seconds: float = 0.0

    @property
    def queue_url(self) -> str:
        return self.aws["queue_url"]

    def pipeline(self, *, seconds_left: float = 60.0) -> TriggerPipeline:
        http = httpx.Client(transport=httpx.MockTransport(self.vendor))
        dynamodb, s3 = self.aws["dynamodb"], self.aws["s3"]
        secrets = self._secret
        caller = VendorCaller(
            http,
            QuotaGate("quota", dynamodb, self.clock),
            Credentials(MintedTokens(http, secrets=secrets, clock=self.clock), secrets=secrets),
            deadline=self.clock.now + seconds_left,
            clock=self.clock,
            sleep=lambda s: None,
            gathering_seconds=self.gathering_seconds,
            book_ahead=self.tickets,
        )
        return TriggerPipeline(
            self.routes,
            caller,
            DeliveryLedger("ledger", dynamodb, self.clock, hold_seconds=seconds_left + 10),
            Deferrals(self.queue_url, self.aws["sqs"], self.clock),
            RejectedStore("bucket", s3, self.clock, prefix=REJECTED_PREFIX),
            RejectedStore("bucket", s3, self.clock, prefix=UNCERTAIN_PREFIX),
            deferral_limit=self.deferral_limit,
            gathering_seconds=self.gathering_seconds,
            tickets=SlotTickets("quota", dynamodb) if self.tickets else None,
            clock=self.clock,
        )

    def _secret(self, name: str) -> dict[str, Any]:
        if name not in self.secrets:
            raise KeyError(f"no secret {name}")
        return self.secrets[name]

    def send(self, body: dict[str, Any] | str, attributes: dict[str, Any] | None = None) -> str:
        text = body if isinstance(body, str) else json.dumps(body)
        return self.aws["sqs"].send_message(
            QueueUrl=self.queue_url, MessageBody=text, MessageAttributes=attributes or {}
        )["MessageId"]

    def receive(self, visibility: int = 30) -> list[InboundRecord]:
        """What Lambda's event source mapping would hand an invocation now (delays elapsed)."""
        messages = (
            self.aws["sqs"]
            .receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=visibility,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            .get("Messages", [])
        )
        self._held = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
        arn = f"arn:aws:sqs:{REGION}:123456789012:ingest"
        return service.sqs_records({"Records": [lambda_record(m, arn) for m in messages]})

    def receive_all(self) -> list[InboundRecord]:
        """Everything visible now, as one invocation's batch."""
        records: list[InboundRecord] = []
        held: dict[str, str] = {}
        while batch := self.receive():
            records += batch
            held |= self._held
        self._held = held
        return records

    def acknowledge(self, report: BatchReport) -> None:
        """Delete what the invocation did not report as a batch item failure, as Lambda does."""
        failed = {f["itemIdentifier"] for f in report.partial_batch_response()["batchItemFailures"]}
        for message_id, handle in self._held.items():
            if message_id not in failed:
                self.aws["sqs"].delete_message(QueueUrl=self.queue_url, ReceiptHandle=handle)

    def stored(self, prefix: str) -> list[dict[str, Any]]:
        """The records stored under prefix (rejected/ or uncertain/), not yet redriven."""
        import gzip

        s3 = self.aws["s3"]
        rows = []
        for item in s3.list_objects_v2(Bucket="bucket", Prefix=prefix).get("Contents", []):
            if item["Key"].startswith(prefix + "redriven/"):
                continue  # sent back by an operator
            data = s3.get_object(Bucket="bucket", Key=item["Key"])["Body"].read()
            rows += [json.loads(line) for line in gzip.decompress(data).splitlines() if line]
        return rows


@contextmanager
def relay(
    routes_yaml: str = ALTCRAFT_ROUTES,
    vendor: Callable[[httpx.Request], httpx.Response] | None = None,
) -> Iterator[Relay]:
    """The relay's AWS resources on moto (with the local stack's strict SQS), as the template
    makes them. Delays on the queue elapse at once: the fake clock stands for time."""
    moto_patches.apply()
    with mock_aws():
        from moto.sqs.models import Message

        delayed = Message.delayed
        Message.delayed = property(lambda self: False)  # type: ignore[assignment,method-assign]
        try:
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            for table, key in (("quota", "pk"), ("ledger", "id")):
                create_table(dynamodb, table, key)
            sqs = boto3.client("sqs", region_name=REGION)
            url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(
                Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            aws = {"dynamodb": dynamodb, "sqs": sqs, "s3": s3, "queue_url": url}
            yield Relay(aws, parse_routes(routes_yaml), vendor or FakeAltcraft(), Clock())
        finally:
            Message.delayed = delayed  # type: ignore[method-assign]
