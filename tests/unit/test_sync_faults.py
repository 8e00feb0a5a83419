"""The recipients sync under Zoho's refusals: a refused token is dropped and replaced; a final
answer is not asked again every hour."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml

from tests.conftest import ROOT
from tests.helpers.relay import relay
from trigger_relay.pipeline.recipients_sync import RecipientsSync
from trigger_relay.pipeline.routes import Account, RecipientsSyncConfig
from trigger_relay.stores.credentials import MintedTokens, SharedTokenStore
from trigger_relay.stores.cursors import SyncCursors, SyncLease
from trigger_relay.stores.quota import QuotaGate

SECRET = {"client_id": "1000.C", "client_secret": "s3cret", "refresh_token": "1000.r"}
ACCOUNT = Account(vendor="zoho", data_centre="eu", secret="zoho")


class Zoho:
    """Mints tokens; refuses the first one it minted; answers each campaign as told."""

    def __init__(self, answers: dict[str, dict]) -> None:
        self.answers = answers
        self.minted: list[str] = []
        self.pages: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = urlsplit(str(request.url))
        if url.path == "/oauth/v2/token":
            self.minted.append(f"1000.t{len(self.minted)}")
            return httpx.Response(200, json={"access_token": self.minted[-1], "expires_in": 3600})
        query = parse_qs(url.query)
        self.pages.append(query["campaignkey"][0])
        if request.headers["Authorization"].endswith("1000.t0"):  # revoked in Zoho's console
            return httpx.Response(200, json={"code": "INVALID_TOKEN", "status": "error"})
        return httpx.Response(200, json=self.answers[query["campaignkey"][0]])


def sync(r, zoho: Zoho) -> RecipientsSync:
    dynamodb = r.aws["dynamodb"]
    if "cursors" not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(
            TableName="cursors",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    http = httpx.Client(transport=httpx.MockTransport(zoho))
    tokens = MintedTokens(
        http,
        secrets=lambda _: SECRET,
        clock=r.clock,
        shared=SharedTokenStore("quota", dynamodb, r.clock),
    )
    return RecipientsSync(
        http=http,
        tokens=tokens,
        quota=QuotaGate("quota", dynamodb, r.clock),
        cursors=SyncCursors("cursors", dynamodb),
        s3=r.aws["s3"],
        bucket="bucket",
        deadline=r.clock.now + 300,
        clock=r.clock,
        sleep=lambda s: None,
    )


def test_a_refused_token_is_dropped_and_the_page_asked_again_with_a_new_one() -> None:
    rows = [{"contactemailaddress": "a@x.co", "contactid": "1"}]
    zoho = Zoho({"c1": {"code": "0", "status": "success", "list_of_details": rows}})
    config = RecipientsSyncConfig(account="zoho", campaigns=["c1"], actions=["sentcontacts"])
    with relay() as r:
        report = sync(r, zoho).run(config, ACCOUNT)
        assert [run.stopped for run in report.runs] == ["complete"] and report.rows == 1
        assert zoho.minted == ["1000.t0", "1000.t1"]
        # the refused token is gone from the shared store too: the next run mints no other
        sync(r, zoho).run(config, ACCOUNT)
        assert zoho.minted == ["1000.t0", "1000.t1"]


def test_a_final_answer_is_not_asked_again_every_hour() -> None:
    answer = {"code": "6002", "status": "error", "message": "Invalid campaign key"}
    zoho = Zoho({"gone": answer})
    config = RecipientsSyncConfig(account="zoho", campaigns=["gone"], actions=["sentcontacts"])
    with relay() as r:
        first = sync(r, zoho).run(config, ACCOUNT)
        assert first.runs[0].stopped.endswith("(final)")
        asked = len(zoho.pages)
        for _ in range(5):  # the hourly schedule
            r.clock.now += 3600
            later = sync(r, zoho).run(config, ACCOUNT)
            assert later.runs[0].stopped.startswith("skipped: Zoho 6002")
        assert len(zoho.pages) == asked
        r.clock.now += 24 * 3600  # a day on, Zoho is asked again (the campaign may be sent now)
        sync(r, zoho).run(config, ACCOUNT)
        assert len(zoho.pages) == asked + 1


def test_a_second_run_while_one_holds_the_lease_reads_nothing() -> None:
    with relay() as r:
        sync(r, Zoho({}))  # creates the cursor table
        lease = SyncLease("cursors", r.aws["dynamodb"], r.clock)
        first_ends = r.clock.now + 300
        assert lease.acquire("run-a", ends_at=first_ends) is None
        # an overlapping run is refused and told until when
        assert lease.acquire("run-b", ends_at=r.clock.now + 300) == first_ends + lease.GRACE_SECONDS
        # Lambda retries an async invocation with the same request id, after it ended
        assert lease.acquire("run-a", ends_at=first_ends) is None
        lease.release("run-b")  # not the holder: nothing changes
        assert lease.acquire("run-b", ends_at=r.clock.now + 300) is not None
        lease.release("run-a")
        assert lease.acquire("run-b", ends_at=r.clock.now + 300) is None


def test_a_run_that_died_holding_the_lease_frees_it_when_lambda_would_have_stopped_it() -> None:
    with relay() as r:
        sync(r, Zoho({}))
        lease = SyncLease("cursors", r.aws["dynamodb"], r.clock)
        assert lease.acquire("killed", ends_at=r.clock.now + 300) is None  # never released
        r.clock.now += 300 + lease.GRACE_SECONDS - 1
        assert lease.acquire("next", ends_at=r.clock.now + 300) is not None
        r.clock.now += 2
        assert lease.acquire("next", ends_at=r.clock.now + 300) is None


def test_overlapping_scheduled_runs_write_each_range_once(monkeypatch, tmp_path: Path) -> None:
    """Two sync runs started while the first is mid-page (a slow Zoho, a manual `sync` during
    the hourly one): the second reads nothing, so no object is written twice with different
    contents and the cursor moves once."""
    import threading

    from trigger_relay.functions import clients
    from trigger_relay.functions import recipients_sync as sync_service

    rows = [{"contactemailaddress": f"r{i}@x.co", "contactid": str(i)} for i in range(3)]
    inside, release = threading.Event(), threading.Event()

    def slow_zoho(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v2/token":
            return httpx.Response(200, json={"access_token": "1000.t", "expires_in": 3600})
        inside.set()
        assert release.wait(10)
        return httpx.Response(200, json={"code": "0", "status": "success", "list_of_details": rows})

    with relay() as r:
        sync(r, Zoho({}))
        routes = tmp_path / "routes.yaml"
        document = yaml.safe_load((ROOT / "layers" / "common" / "routes.yaml").read_text())
        document["recipients_sync"].update(campaigns=["c1"], actions=["sentcontacts"])
        routes.write_text(yaml.safe_dump(document))
        monkeypatch.setenv("QUOTA_TABLE", "quota")
        monkeypatch.setenv("CURSOR_TABLE", "cursors")
        monkeypatch.setenv("RECIPIENTS_BUCKET", "bucket")
        monkeypatch.setenv("ROUTES_FILE", str(routes))
        monkeypatch.setattr(clients, "aws", lambda service: r.aws[service])
        monkeypatch.setattr(
            clients, "http", lambda: httpx.Client(transport=httpx.MockTransport(slow_zoho))
        )
        monkeypatch.setattr(
            clients,
            "minted_tokens",
            lambda table: MintedTokens(clients.http(), secrets=lambda _: SECRET),
        )
        reports = {}
        first = threading.Thread(target=lambda: reports.setdefault("first", sync_service.run(None)))
        first.start()
        assert inside.wait(10)
        reports["second"] = sync_service.run(None)
        release.set()
        first.join(10)
        assert reports["second"].skipped.startswith("another sync run holds the lease until")
        assert reports["second"].runs == []
        assert reports["first"].rows == 3 and not reports["first"].skipped
        # the first run gave the lease back: the next run syncs
        assert not sync_service.run(None).skipped
