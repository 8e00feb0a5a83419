"""Edges of exactly-once found by reading the code against httpx's and the vendors' behaviour:
answers that do not decode, recipients no call can carry, operators redriving one route or a day
later, servers that drip their answer, token mints near the deadline, routes merged into one
call with different delivery semantics. Each test counts at the vendor."""

from __future__ import annotations

import socket
import threading
import time

import httpx

from tests.helpers.relay import ACCOUNTS, LAUNCH, FakeAltcraft, relay, route
from trigger_relay.pipeline.relay import Status
from trigger_relay.pipeline.vendor_calls import HTTP_TIMEOUT, MIN_CALL_SECONDS
from trigger_relay.stores.parking import UNCERTAIN_PREFIX
from trigger_relay_cli.operations import UNCERTAIN, redrive_rejected
from trigger_relay_cli.target import Target

SIGNUP = {"type": "user.signed_up", "user": {"email": "ana@example.com"}}
ONE_LAUNCH_ROUTE = ACCOUNTS + LAUNCH


def _target(r) -> Target:
    outputs = {
        "RecipientsBucketName": "bucket",
        "IngestQueueUrl": r.queue_url,
        "LedgerTableName": "ledger",
    }
    return Target("t", outputs)


def test_an_accepted_call_whose_answer_will_not_decode_is_not_launched_again() -> None:
    """A proxy mangles the gzip answer: httpx raises DecodingError after Altcraft launched."""
    altcraft = FakeAltcraft()
    mangle = [True]

    def vendor(request: httpx.Request) -> httpx.Response:
        answer = altcraft(request)
        if mangle and mangle.pop():
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return httpx.Response(200, headers=headers, content=b"\x1f\x8b garbled")
        return answer

    with relay(ONE_LAUNCH_ROUTE, vendor=vendor) as r:
        r.send(SIGNUP)
        records = r.receive()
        first = r.pipeline().process(records)
        assert set(first.statuses.values()) == {Status.UNCERTAIN}
        assert "DecodingError" in first.reasons[records[0].record_id][0]
        r.clock.now += 400
        r.pipeline().process(records)  # SQS delivers it again anyway
        assert len(altcraft.launched) == 1


def test_a_recipient_no_call_can_carry_is_rejected_alone() -> None:
    params = "{trigger_id: 8, matching: custom, field_name: CRM_ID, max_body_bytes: 1024}"
    bulk = route("crm-bulk", "altcraft.bulk_trigger", params, mapping="{field_value: user.crm}")
    routes = ACCOUNTS + bulk
    vendor = FakeAltcraft()
    with relay(routes, vendor=vendor) as r:
        r.send({"type": "user.signed_up", "user": {"crm": "x" * 2000}})
        r.send({"type": "user.signed_up", "user": {"crm": "42"}})
        records = r.receive()
        report = r.pipeline().process(records)
        by_body = {("42" in x.body): report.statuses[x.record_id] for x in records}
        assert by_body == {True: Status.DELIVERED, False: Status.REJECTED}
        big = next(x.record_id for x in records if "xxxx" in x.body)
        assert "alone exceeds the body cap" in report.reasons[big][0]
        assert vendor.launched == [("8", "42")]


def test_redriving_one_uncertain_route_repeats_that_pair_only_and_keeps_the_other() -> None:
    vendor = FakeAltcraft(faults=["accept_then_timeout", "accept_then_timeout"])
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        r.acknowledge(r.pipeline().process(r.receive()))
        (row,) = r.stored(UNCERTAIN_PREFIX)
        assert len(row["ledger_keys"]) == 2
        assert redrive_rejected(_target(r), None, "welcome-link", False, UNCERTAIN) == 1
        (left,) = r.stored(UNCERTAIN_PREFIX)  # the other route stays for its own decision
        assert [k.rsplit("#", 1)[1] for k in left["ledger_keys"]] == ["welcome-launch"]
        r.pipeline().process(r.receive())
        assert sorted(k for k, _ in vendor.launched) == ["84", "link", "link"]


def test_a_redrive_a_day_later_does_not_repeat_what_was_delivered() -> None:
    """The ledger forgets after 24 h; the stored record remembers which routes were left."""
    vendor = FakeAltcraft(faults=["accept_then_timeout", None])
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        r.acknowledge(r.pipeline().process(r.receive()))
        r.clock.now += 25 * 3600  # the operator checks Altcraft the next day
        assert redrive_rejected(_target(r), None, None, False, UNCERTAIN) == 1
        report = r.pipeline().process(r.receive())
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert sorted(k for k, _ in vendor.launched) == ["84", "84", "link"]

    vendor = FakeAltcraft(faults=[None, httpx.Response(301, headers={"Location": "https://x/"})])
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        r.acknowledge(r.pipeline().process(r.receive()))  # the link was redirected
        r.clock.now += 25 * 3600  # fixed the next day
        assert redrive_rejected(_target(r), "redirected", None, show=False) == 1
        r.pipeline().process(r.receive())
        assert sorted(k for k, _ in vendor.launched) == ["84", "link"]


def _dripping_server(body: bytes) -> tuple[int, threading.Event]:
    """Answers headers at once, then the body a byte every 0.2 s: under every read timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(4096)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        connection.sendall(head % len(body))
        for i in range(len(body)):
            if stop.is_set():
                break
            connection.sendall(body[i : i + 1])
            time.sleep(0.2)
        connection.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], stop


def test_a_server_dripping_its_answer_cannot_keep_a_call_past_the_deadline() -> None:
    port, stop = _dripping_server(b'{"error": 0, "error_text": "Successful operation"}')
    routes = ONE_LAUNCH_ROUTE.replace("https://ac.example.com", f"http://127.0.0.1:{port}")
    with relay(routes) as r:
        r.send(SIGNUP)
        pipeline = r.pipeline(seconds_left=3.0)
        pipeline.caller._http = httpx.Client(timeout=HTTP_TIMEOUT)  # as clients.http() makes it
        started = time.monotonic()
        report = pipeline.process(r.receive())
        elapsed = time.monotonic() - started
        stop.set()
        assert set(report.statuses.values()) == {Status.UNCERTAIN}  # it may have launched

        # abandoned at the deadline (10 s before Lambda's end), not after the 10 s drip
        assert elapsed < 3.0 + 1.5


ZOHO_ROUTE = """
accounts:
  zoho-main: {vendor: zoho, data_centre: com, secret: trigger-relay/zoho-main}
routes:
  - name: welcome-workflow
    match: {type: user.signed_up}
    action: zoho_campaigns.workflow_trigger
    account: zoho-main
    params: {workflow_key: w, trigger_key: t, list_key: l}
    mapping: {email: user.email}
"""


def test_no_token_mint_starts_that_could_outlive_the_invocation() -> None:
    seen: list[tuple[str, dict]] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.extensions.get("timeout") or {}))
        if request.url.path == "/oauth/v2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json={"code": "200", "status": "success"})

    for seconds_left in (MIN_CALL_SECONDS / 2, 2.0):
        with relay(ZOHO_ROUTE, vendor=vendor) as r:
            r.secrets["trigger-relay/zoho-main"] = {
                "client_id": "id",
                "client_secret": "s",
                "refresh_token": "rt",
            }
            r.send(SIGNUP)
            pipeline = r.pipeline(seconds_left=seconds_left)
            client = httpx.Client(timeout=HTTP_TIMEOUT, transport=httpx.MockTransport(vendor))
            pipeline.caller._credentials._minted._http = client  # type: ignore[attr-defined]
            pipeline.process(r.receive())
            for path, timeout in seen:
                assert sum(v for v in timeout.values() if v) <= seconds_left, (path, timeout)
            seen.clear()


def test_routes_with_different_delivery_semantics_are_not_merged_into_one_call() -> None:
    vip = route(
        "vip-launch",
        "altcraft.trigger",
        "{id: 84}",
        match="{type: user.signed_up, fields: {user.vip: true}}",
        extra="delivery: at_least_once",
    )
    routes = ONE_LAUNCH_ROUTE + vip
    vendor = FakeAltcraft(faults=["accept_then_timeout", "accept_then_timeout"])
    with relay(routes, vendor=vendor) as r:
        r.send({"type": "user.signed_up", "user": {"email": "a@x.co", "vip": True}})
        (record,) = r.receive()
        report = r.pipeline().process([record])
        reasons = report.reasons[record.record_id]
        assert any(x.startswith("welcome-launch") and "may have been" in x for x in reasons)
        assert not any(x.startswith("vip-launch") for x in reasons)  # repeated, delivered


def test_a_call_that_never_got_a_thread_before_the_deadline_is_never_sent() -> None:
    """Abandoned calls can hold every call thread; a call queued behind them until the deadline
    must not be sent later (it is cancelled, and retried as certainly not sent)."""
    from trigger_relay.pipeline.vendor_calls import _call_threads

    release = threading.Event()
    blockers = [_call_threads().submit(release.wait, 30) for _ in range(8)]
    vendor = FakeAltcraft()
    try:
        with relay(ONE_LAUNCH_ROUTE, vendor=vendor) as r:
            r.send(SIGNUP)
            report = r.pipeline(seconds_left=2.0).process(r.receive())
            (reasons,) = report.reasons.values()
            assert set(report.statuses.values()) == {Status.RETRY}
            assert "not sent: NotStartedInTime" in reasons[0]
    finally:
        release.set()
        for blocker in blockers:
            blocker.result(timeout=5)
    time.sleep(0.2)
    assert vendor.requests == 0  # the cancelled call was not sent afterwards either


def test_a_partly_delivered_record_that_must_retry_comes_back_knowing_what_is_left() -> None:
    """The launch is delivered, the link cannot be reached: instead of SQS redelivering the
    whole record (which, through the DLQ a day later, would launch again), a copy carrying the
    one route left comes back."""
    vendor = FakeAltcraft(faults=[None, "connect_refused", "connect_refused"])
    with relay(vendor=vendor) as r:
        r.send(SIGNUP)
        report = r.pipeline().process(r.receive())
        assert set(report.statuses.values()) == {Status.DEFERRED}
        assert report.partial_batch_response() == {"batchItemFailures": []}
        r.acknowledge(report)
        r.clock.now += 25 * 3600  # the ledger has forgotten the launch
        (copy,) = r.receive()
        assert copy.handling.routes == ("welcome-link",)
        r.acknowledge(r.pipeline().process([copy]))
        (again,) = r.receive() or [copy]
        assert again.handling.routes == ("welcome-link",)  # a deferral keeps what is left
        r.pipeline().process([again])
        assert sorted(k for k, _ in vendor.launched) == ["84", "link"]


def test_a_dlq_redrive_keeps_the_routes_a_copy_had_left() -> None:
    from trigger_relay.pipeline.queue_messages import Handling, Outgoing, QueueWriter
    from trigger_relay_cli.operations import redrive_dlq

    vendor = FakeAltcraft()
    with relay(vendor=vendor) as r:
        sqs = r.aws["sqs"]
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        left = Handling("evt-1", 3, None, ("welcome-link",))
        assert (
            QueueWriter(sqs, dlq).send(
                [Outgoing('{"type": "user.signed_up", "user": {"email": "a@x.co"}}', {}, left)]
            )
            == {}
        )
        outputs = {"IngestDeadLetterQueueUrl": dlq, "IngestQueueUrl": r.queue_url}
        assert redrive_dlq(Target("t", outputs), lambda body: True, show=False) == 1
        (copy,) = r.receive()
        assert copy.handling.event_id == "evt-1" and copy.handling.routes == ("welcome-link",)
        r.pipeline().process([copy])
        assert [k for k, _ in vendor.launched] == ["link"]


def test_a_route_left_to_a_copy_that_is_gone_from_the_routes_file_is_rejected_by_name() -> None:
    vendor = FakeAltcraft()
    with relay(vendor=vendor) as r:
        from trigger_relay.pipeline.queue_messages import Handling, Outgoing, QueueWriter

        left = Handling("evt-2", 0, None, ("welcome-launch", "welcome-link-old"))
        body = '{"type": "user.signed_up", "user": {"email": "b@x.co"}}'
        QueueWriter(r.aws["sqs"], r.queue_url).send([Outgoing(body, {}, left)])
        report = r.pipeline().process(r.receive())
        (reasons,) = report.reasons.values()
        assert set(report.statuses.values()) == {Status.REJECTED}
        assert reasons == [
            "route welcome-link-old: no longer in the routes file or no longer matching"
        ]
        (row,) = r.stored("rejected/")
        assert row["handling"]["r"] == ["welcome-link-old"]  # the launch is not left to redo
        assert [k for k, _ in vendor.launched] == ["84"]


def test_a_route_filtered_redrive_of_an_old_uncertain_row_keeps_the_other_pair() -> None:
    """Rows stored before the routes left were recorded: they are read from the ledger keys."""
    import gzip
    import json

    vendor = FakeAltcraft()
    with relay(vendor=vendor) as r:
        row = {
            "record_id": "m1",
            "event_id": "ev-1",
            "reasons": ["welcome-launch: no answer", "welcome-link: no answer"],
            "attributes": {},
            "handling": {"id": "ev-1"},
            "ledger_keys": ["ev-1#welcome-launch", "ev-1#welcome-link"],
            "body": json.dumps(SIGNUP),
        }
        key = "uncertain/dt=2026-01-01/old.jsonl.gz"
        r.aws["s3"].put_object(
            Bucket="bucket", Key=key, Body=gzip.compress(json.dumps(row).encode())
        )
        assert redrive_rejected(_target(r), None, "welcome-link", False, UNCERTAIN) == 1
        (kept,) = r.stored(UNCERTAIN_PREFIX)
        assert kept["ledger_keys"] == ["ev-1#welcome-launch"]
        r.pipeline().process(r.receive())
        assert [k for k, _ in vendor.launched] == ["link"]


def test_an_event_no_route_took_is_routed_afresh_when_redriven_after_the_routes_are_fixed() -> None:
    """A new event type arrives before its route: rejected "no route matches". The operator adds
    the route and redrives: the event is delivered on it, not rejected again for having had no
    routes the first time."""
    vendor = FakeAltcraft()
    with relay(vendor=vendor) as r:
        r.send({"id": "evt-new", "type": "plan.upgraded", "user": {"email": "n@x.co"}})
        report = r.pipeline().process(r.receive())
        r.acknowledge(report)
        assert set(report.statuses.values()) == {Status.REJECTED}
        (row,) = r.stored("rejected/")
        assert row["handling"].get("r") is None, "stored as if it had no routes left"
        # the routes file gains a route for the type, and the operator redrives
        r.routes = r.routes.model_copy(
            update={
                "routes": [
                    route.model_copy(
                        update={"match": route.match.model_copy(update={"type": "plan.upgraded"})}
                    )
                    for route in r.routes.routes
                ]
            }
        )
        assert redrive_rejected(_target(r), None, None) == 1
        report = r.pipeline().process(r.receive())
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert len(vendor.launched) >= 1
