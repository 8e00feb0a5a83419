"""Exactly once under the faults AWS and the vendors really produce: each test counts what the
vendor acted on, whatever the relay believed."""

from __future__ import annotations

import json

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.helpers.relay import ACCOUNTS, ALTCRAFT_ROUTES, LINK, FakeAltcraft, relay, route
from trigger_relay.pipeline.relay import Status
from trigger_relay.stores.parking import UNCERTAIN_PREFIX, DeferralLimit

SIGNUP = {"type": "user.signed_up", "user": {"email": "Ana@Example.com"}}  # no id of its own


def test_a_deferred_copy_of_an_event_without_an_id_is_the_same_event() -> None:
    """SQS hands one message to two invocations; the second defers it. The deferred copy gets a
    new message id, yet the ledger knows it: 2 routes, 2 launches, not 4."""
    vendor = FakeAltcraft()
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        records = r.receive()
        second = r.pipeline()
        reports = {}

        def first_vendor(request: httpx.Request) -> httpx.Response:
            if "second" not in reports:  # while the first invocation's call is in flight
                reports["second"] = second.process(records)
            return vendor(request)

        r.vendor = first_vendor
        first = r.pipeline().process(records)
        r.vendor = vendor
        assert set(first.statuses.values()) == {Status.DELIVERED}
        assert set(reports["second"].statuses.values()) == {Status.DEFERRED}
        r.acknowledge(first)

        copy = r.receive()
        assert len(copy) == 1 and copy[0].record_id != records[0].record_id
        assert copy[0].handling.event_id == records[0].record_id  # the identity travelled
        again = r.pipeline().process(copy)
        assert set(again.statuses.values()) == {Status.DELIVERED}
        assert len(vendor.launched) == 2


def test_a_record_partly_delivered_and_partly_deferred_comes_back_for_the_rest_only() -> None:
    vendor = FakeAltcraft()
    vendor.faults = [None, httpx.Response(429, headers={"Retry-After": "30"})]  # the link: 429
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        first = r.pipeline().process(r.receive())
        assert set(first.statuses.values()) == {Status.DEFERRED}
        r.acknowledge(first)
        r.clock.now += 31  # Retry-After honoured: the API is locked for 30 s, not 60
        again = r.pipeline().process(r.receive())
        assert set(again.statuses.values()) == {Status.DELIVERED}
        assert sorted(kind for kind, _ in vendor.launched) == ["84", "link"]


def test_identity_and_every_attribute_type_survive_a_deferral() -> None:
    vendor = FakeAltcraft(faults=[httpx.Response(429), httpx.Response(429)])
    attributes = {
        "idempotency_key": {"DataType": "Number", "StringValue": "12345"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01raw"},
        "tenant": {"DataType": "String.tenant", "StringValue": "acme"},
    }
    with relay(vendor=vendor) as r:
        r.send(SIGNUP, attributes)
        records = r.receive()
        assert records[0].text_attributes()["idempotency_key"] == "12345"
        report = r.pipeline().process(records)
        assert set(report.statuses.values()) == {Status.DEFERRED}
        r.acknowledge(report)
        r.clock.now += 3600
        (copy,) = r.receive()
        assert copy.attributes == records[0].attributes  # names, types, values: all of them
        assert copy.handling.event_id == "12345" and copy.handling.deferrals == 1
        r.pipeline().process([copy])
        assert len(vendor.launched) == 2


def test_a_producer_using_all_ten_attributes_still_gets_its_copy_back_whole() -> None:
    vendor = FakeAltcraft(faults=[httpx.Response(429), httpx.Response(429)])
    attributes = {f"a{i}": {"DataType": "String", "StringValue": f"v{i}"} for i in range(10)}
    with relay(vendor=vendor) as r:
        r.send(SIGNUP, attributes)
        records = r.receive()
        r.acknowledge(r.pipeline().process(records))  # deferred: an 11th attribute is refused
        r.clock.now += 3600
        (copy,) = r.receive()
        assert copy.body == records[0].body and copy.attributes == records[0].attributes
        assert copy.handling.event_id == records[0].record_id
        r.pipeline().process([copy])
        assert len(vendor.launched) == 2


def test_altcraft_accepting_then_timing_out_is_launched_once_and_stored_uncertain() -> None:
    vendor = FakeAltcraft(faults=["accept_then_timeout"])
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        records = r.receive()
        report = r.pipeline().process(records)
        (status,) = report.statuses.values()
        assert status is Status.UNCERTAIN
        assert report.partial_batch_response() == {"batchItemFailures": []}
        (row,) = r.stored(UNCERTAIN_PREFIX)
        assert row["ledger_keys"] == [f"{records[0].record_id}#welcome-launch"]
        assert "ReadTimeout" in row["reasons"][0]
        # SQS delivers the same message again anyway: nothing is launched a second time
        r.clock.now += 120
        again = r.pipeline().process(records)
        assert set(again.statuses.values()) == {Status.UNCERTAIN}
        assert len(r.stored(UNCERTAIN_PREFIX)) == 1
        assert sorted(kind for kind, _ in vendor.launched) == ["84", "link"]


def test_at_least_once_routes_repeat_a_maybe_accepted_call() -> None:
    launch = route(
        "welcome-launch", "altcraft.trigger", "{id: 84}", extra="delivery: at_least_once"
    )
    routes = ACCOUNTS + launch + LINK
    vendor = FakeAltcraft(faults=["accept_then_timeout"])
    with relay(routes, vendor=vendor) as r:
        r.send(SIGNUP)
        report = r.pipeline().process(r.receive())
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert sorted(kind for kind, _ in vendor.launched) == ["84", "84", "link"]


def test_a_refused_connection_is_retried_at_once_it_never_reached_altcraft() -> None:
    vendor = FakeAltcraft(faults=["connect_refused"])
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        report = r.pipeline().process(r.receive())
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert sorted(kind for kind, _ in vendor.launched) == ["84", "link"]


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (
            httpx.Response(301, headers={"Location": "https://trk.example.com/trg/x/y%40z.co"}),
            Status.REJECTED,
            "redirected to https://trk.example.com",
        ),
        (
            httpx.Response(502, html="<html><h1>502 Bad Gateway</h1></html>"),
            Status.UNCERTAIN,
            "502",
        ),
        (httpx.Response(200, content=b""), Status.UNCERTAIN, "0 bytes"),
        (httpx.Response(200, html="<html>welcome</html>"), Status.UNCERTAIN, "text/html"),
        (httpx.Response(200, json={"ok": True}), Status.UNCERTAIN, "does not report success"),
        (httpx.Response(503, text="busy"), Status.DELIVERED, ""),  # retried at once
    ],
)
def test_only_a_2xx_that_says_success_is_a_delivery(
    answer: httpx.Response, status: Status, reason: str
) -> None:
    routes = ACCOUNTS + LINK
    vendor = FakeAltcraft(faults=[answer])
    with relay(routes, vendor=vendor) as r:
        r.send(SIGNUP)
        report = r.pipeline().process(r.receive())
        assert set(report.statuses.values()) == {status}
        assert all(reason in " ".join(rs) for rs in report.reasons.values())
        assert len(vendor.launched) == (1 if status is Status.DELIVERED else 0)


def test_a_414_splits_the_call_and_every_recipient_is_launched_once() -> None:
    routes = ACCOUNTS + route("bulk", "altcraft.bulk_trigger", "{trigger_id: 8}")
    vendor = FakeAltcraft(faults=[httpx.Response(414), httpx.Response(414)])
    with relay(routes, vendor=vendor) as r:
        for i in range(5):
            r.send({"type": "user.signed_up", "user": {"email": f"u{i}@example.com"}})
        records = r.receive()
        report = r.pipeline().process(records)
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert sorted(email for _, email in vendor.launched) == [
            f"u{i}@example.com" for i in range(5)
        ]


def test_a_route_condition_that_fails_on_one_record_rejects_that_record_only() -> None:
    vip = "{type: user.signed_up, fields: {\"contains(user.tags, 'vip')\": true}}"
    routes = ACCOUNTS + route("welcome-launch", "altcraft.trigger", "{id: 84}", match=vip)
    vendor = FakeAltcraft()
    with relay(routes, vendor=vendor) as r:
        r.send({"type": "user.signed_up", "user": {"email": "a@x.co", "tags": 7}})
        r.send({"type": "user.signed_up", "user": {"email": "b@x.co", "tags": ["vip"]}})
        r.send({"type": "user.signed_up", "user": {"email": "c@x.co", "tags": {"vip": True}}})
        records = r.receive()
        report = r.pipeline().process(records)
        by_email = {
            json.loads(x.body)["user"]["email"]: report.statuses[x.record_id] for x in records
        }
        assert by_email == {
            "a@x.co": Status.REJECTED,
            "b@x.co": Status.DELIVERED,
            "c@x.co": Status.REJECTED,
        }
        bad = next(x for x in records if '"tags": 7' in x.body)
        assert "contains" in report.reasons[bad.record_id][0]
        assert vendor.launched == [("84", "b@x.co")]


@pytest.mark.parametrize(
    "secrets",
    [
        {},  # the secret does not exist
        {"trigger-relay/altcraft2": {"api_key": "wrong field"}},  # no token in it
    ],
)
def test_one_accounts_credentials_failing_defers_its_records_alone(secrets: dict) -> None:
    order = route(
        "order-launch",
        "altcraft.trigger",
        "{id: 85}",
        account="ac2",
        mapping="{email: customer.email}",
    ).replace("{type: user.signed_up}", "{type: order.placed}")
    second = '  ac2: {vendor: altcraft, secret: trigger-relay/altcraft2, base_url: "https://b.x"}\n'
    routes = (ALTCRAFT_ROUTES + order).replace("accounts:\n", "accounts:\n" + second)
    vendor = FakeAltcraft()
    with relay(routes, vendor=vendor) as r:
        r.secrets.update(secrets)
        r.send(SIGNUP)
        for i in range(3):
            r.send({"type": "order.placed", "customer": {"email": f"o{i}@x.co"}})
        records = r.receive()
        report = r.pipeline().process(records)
        orders = [x.record_id for x in records if "order" in x.body]
        assert {report.statuses[o] for o in orders} == {Status.DEFERRED}
        assert all("credentials of account ac2" in report.reasons[o][0] for o in orders)
        signup = next(x.record_id for x in records if "signed_up" in x.body)
        assert report.statuses[signup] is Status.DELIVERED
        assert sorted(k for k, _ in vendor.launched) == ["84", "link"]
        # nothing of the secret's value is in a reason
        assert "wrong field" not in json.dumps(report.reasons)


def test_a_failed_ledger_write_after_the_vendor_accepted_loses_and_repeats_nothing() -> None:
    vendor = FakeAltcraft()
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        records = r.receive()
        pipeline = r.pipeline()
        client = r.aws["dynamodb"]

        class FailingWrites:
            def __getattr__(self, name: str) -> object:
                if name == "batch_write_item":

                    def refuse(**kwargs: object) -> None:
                        error = {"Error": {"Code": "InternalServerError", "Message": "boom"}}
                        raise ClientError(error, "BatchWriteItem")  # type: ignore[arg-type]

                    return refuse
                return getattr(client, name)

        pipeline.ledger._client = FailingWrites()  # type: ignore[attr-defined]
        report = pipeline.process(records)
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert report.partial_batch_response() == {"batchItemFailures": []}
        # The same message again, after the claims lapsed: Altcraft is not launched twice
        r.clock.now += 3600
        again = r.pipeline().process(records)
        assert set(again.statuses.values()) == {Status.UNCERTAIN}
        assert sorted(k for k, _ in vendor.launched) == ["84", "link"]


def test_a_record_deferred_too_long_is_rejected_with_that_reason() -> None:
    vendor = FakeAltcraft(faults=[httpx.Response(429, headers={"Retry-After": "1"})] * 20)
    with relay(vendor=vendor) as r:
        r.deferral_limit = DeferralLimit(max_deferrals=3, max_age_seconds=3600)
        r.send(SIGNUP)
        statuses = []
        for _ in range(10):
            records = r.receive()
            if not records:
                break
            report = r.pipeline().process(records)
            statuses += list(report.statuses.values())
            r.acknowledge(report)
            r.clock.now += 5
        assert statuses == [Status.DEFERRED] * 3 + [Status.REJECTED]
        (row,) = r.stored("rejected/")
        assert row["reasons"][0].startswith("deferred too long: 3 deferrals")
        assert vendor.launched == []


def test_an_operator_redrives_uncertain_records_on_purpose_and_only_those_pairs_repeat() -> None:
    from trigger_relay_cli.operations import UNCERTAIN, redrive_rejected
    from trigger_relay_cli.target import Target

    vendor = FakeAltcraft(faults=["accept_then_timeout"])
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        records = r.receive()
        r.acknowledge(r.pipeline().process(records))
        outputs = {
            "RecipientsBucketName": "bucket",
            "IngestQueueUrl": r.queue_url,
            "LedgerTableName": "ledger",
        }
        moved = redrive_rejected(Target("t", outputs), None, None, show=False, prefix=UNCERTAIN)
        assert moved == 1 and r.stored(UNCERTAIN_PREFIX) == []
        (copy,) = r.receive()
        assert copy.handling.event_id == records[0].record_id
        report = r.pipeline().process([copy])
        assert set(report.statuses.values()) == {Status.DELIVERED}
        # the uncertain launch is repeated, as the operator chose; the delivered link is not
        assert sorted(kind for kind, _ in vendor.launched) == ["84", "84", "link"]


def test_a_rejected_record_redriven_keeps_its_identity_and_attributes() -> None:
    from trigger_relay_cli.operations import redrive_rejected
    from trigger_relay_cli.target import Target

    vendor = FakeAltcraft(faults=[None, httpx.Response(301, headers={"Location": "https://x/"})])
    with relay(vendor=vendor) as r:
        r.send(SIGNUP, {"tenant": {"DataType": "Number", "StringValue": "7"}})
        records = r.receive()
        report = r.pipeline().process(records)
        assert set(report.statuses.values()) == {Status.REJECTED}  # the link was redirected
        r.acknowledge(report)
        outputs = {
            "RecipientsBucketName": "bucket",
            "IngestQueueUrl": r.queue_url,
            "LedgerTableName": "ledger",
        }
        assert redrive_rejected(Target("t", outputs), "redirected", None, show=False) == 1
        (copy,) = r.receive()
        assert copy.attributes == records[0].attributes
        r.pipeline().process([copy])  # the link fixed; the launch is not repeated
        assert sorted(kind for kind, _ in vendor.launched) == ["84", "link"]
