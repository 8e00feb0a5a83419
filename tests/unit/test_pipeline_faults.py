"""The pipeline under AWS faults: a throttled quota table costs a retry, never an event."""

from __future__ import annotations

import json

import httpx
from botocore.exceptions import ClientError

from tests.conftest import ROOT
from tests.helpers.offline import (
    Clock,
    FakeZoho,
    Nowhere,
    create_table,
    offline_caller,
)
from trigger_relay.pipeline.relay import InboundRecord, Status, TriggerPipeline
from trigger_relay.pipeline.routes import load_routes
from trigger_relay.stores.ledger import DeliveryLedger


class Throttled:
    """A DynamoDB client whose writes are throttled while `on` (after botocore's own retries)."""

    def __init__(self, client: object) -> None:
        self._client = client
        self.on = True

    def __getattr__(self, name: str) -> object:
        method = getattr(self._client, name)
        if name != "update_item":
            return method

        def update_item(**kwargs: object) -> object:
            if self.on:
                error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
                raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]
            return method(**kwargs)

        return update_item


def test_a_throttled_quota_table_retries_the_records_and_loses_none(dynamodb) -> None:
    create_table(dynamodb, "ledger", "id")
    zoho = FakeZoho(accounts_host="accounts.zoho.com")
    http = httpx.Client(transport=httpx.MockTransport(zoho))
    clock = Clock()
    throttled = Throttled(dynamodb)
    routes = load_routes(ROOT / "layers" / "common" / "routes.yaml")
    caller = offline_caller(http, throttled, clock)
    pipeline = TriggerPipeline(
        routes, caller, DeliveryLedger("ledger", dynamodb, clock), Nowhere(), Nowhere()
    )  # type: ignore[arg-type]
    records = [
        InboundRecord(
            f"m{i}", json.dumps({"type": "user.signed_up", "user": {"email": f"u{i}@x.co"}})
        )
        for i in range(30)
    ]

    first = pipeline.process(records)
    assert set(first.statuses.values()) == {Status.RETRY}
    assert "AWS error before the call: ClientError" in first.reasons["m0"][0]
    assert sum(first.held_back.values()) == 30  # one reason per record, for the log
    assert all("AWS error before the call" in reason for reason in first.held_back)
    assert first.partial_batch_response()["batchItemFailures"][0] == {"itemIdentifier": "m0"}
    assert zoho.trigger_calls == []

    throttled.on = False  # SQS delivers the batch again
    again = pipeline.process(records)
    assert set(again.statuses.values()) == {Status.DELIVERED}
    assert not again.held_back
    assert len(zoho.trigger_calls) == 1
