"""RecipientsSync: Zoho Campaigns recipient lists to S3, exactly once, over as many runs as needed.

Per (campaign, action) a cursor in DynamoDB holds the next ``fromindex``. A run reads pages
from the cursor on, through the shared quota, and streams them into one object named after
the index it started from: ``recipients/campaign=K/action=A/dt=D/from-000000001.jsonl.gz``.
Only whole pages are written. When the run ends (last page, quota, time, or an error) the
object is completed and the cursor moves to the first index not written, with a condition on
its old value. A run that dies before that leaves the cursor where it was: the next run
writes the same object name again, so nothing is skipped and nothing is there twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from trigger_relay.observability import logger
from trigger_relay.pipeline.routes import Account, RecipientsSyncConfig
from trigger_relay.pipeline.vendor_calls import LATE_SLOTS, call_timeout
from trigger_relay.stores import quota
from trigger_relay.stores.credentials import MintedTokens
from trigger_relay.stores.cursors import SyncCursors
from trigger_relay.stores.quota import Denial, QuotaGate
from trigger_relay.stores.s3_stream import GzipJsonLinesUpload
from trigger_relay.vendors.zoho import recipients as zoho_recipients
from trigger_relay.vendors.zoho.common import DEFAULT_CODES, service_url

# Why a campaign's run ends without ending the whole sync: only these stop every campaign.
STOPS_EVERYTHING = ("quota", "time", "locked")
# A (campaign, action) that Zoho answered with a final code (6601, 6607, 6303, 6002: nothing to
# read, or no access) is not asked again for this long: asking hourly would only repeat it.
FINAL_RETRY_SECONDS = 24 * 3600
SKIPPED = "skipped"
# How far past the deadline (into the time the function reserves to complete the upload) a
# page started before it may run: functions/recipients_sync.py reserves 20 s, a page may take 10.
PAGE_GRACE_SECONDS = 10.0


@dataclass
class CampaignRun:
    campaign: str
    action: str
    start_index: int
    pages: int = 0
    rows: int = 0
    stopped: str = ""  # why the run ended: "complete", "quota", "time", or the vendor's reason
    key: str | None = None


@dataclass
class SyncReport:
    runs: list[CampaignRun] = field(default_factory=list)
    skipped: str = ""  # why the run read nothing: another run holds the lease

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.runs)

    @property
    def pages(self) -> int:
        return sum(r.pages for r in self.runs)


def iso_ms(moment: datetime) -> str:
    """UTC, millisecond ISO 8601 with Z: one format for every time column Athena reads."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def normalise(row: dict[str, Any], campaign: str, action: str, synced_at: str) -> dict[str, Any]:
    """One output row: the campaign, action and sync time; "null" -> null; epoch ms -> ISO."""
    out: dict[str, Any] = {"campaign_key": campaign, "action": action, "synced_at": synced_at}
    for name, value in row.items():
        if value is None or (isinstance(value, str) and value.strip().lower() == "null"):
            out[name] = None
        elif name.endswith("_time") and isinstance(value, str) and value.isdigit():
            out[name] = iso_ms(datetime.fromtimestamp(int(value) / 1000, UTC))
        else:
            out[name] = value
    return out


class RecipientsSync:
    def __init__(
        self,
        *,
        http: httpx.Client,
        tokens: MintedTokens,
        quota: QuotaGate,
        cursors: SyncCursors,
        s3: Any,
        bucket: str,
        deadline: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._quota = quota
        self._cursors = cursors
        self._s3 = s3
        self._bucket = bucket
        self._deadline = deadline
        self._clock = clock
        self._sleep = sleep

    def run(self, config: RecipientsSyncConfig, account: Account) -> SyncReport:
        report = SyncReport()
        for campaign in config.campaigns:
            for action in config.actions:
                if self._clock() >= self._deadline:
                    return report
                run = self._sync_one(config, account, campaign, action)
                report.runs.append(run)
                logger.info(
                    "recipients synced",
                    extra={
                        "campaign": campaign,
                        "action": action,
                        "pages": run.pages,
                        "rows": run.rows,
                        "stopped": run.stopped,
                        "key": run.key,
                    },
                )
                if run.stopped in STOPS_EVERYTHING:
                    return report
        return report

    def _sync_one(
        self, config: RecipientsSyncConfig, account: Account, campaign: str, action: str
    ) -> CampaignRun:
        start = self._cursors.next_index(campaign, action)
        run = CampaignRun(campaign, action, start)
        final = self._cursors.final(campaign, action)
        if final is not None and self._clock() - final[2] < FINAL_RETRY_SECONDS:
            run.stopped = (
                f"{SKIPPED}: Zoho {final[0]}: {final[1]} (final answer; asked again after 24 h)"
            )
            return run
        synced_at = datetime.fromtimestamp(self._clock(), UTC)
        stamp = iso_ms(synced_at)
        run.key = (
            f"recipients/campaign={campaign}/action={action}/dt={synced_at:%Y-%m-%d}/"
            f"from-{start:09d}.jsonl.gz"
        )
        upload = GzipJsonLinesUpload(self._s3, self._bucket, run.key)
        index = start
        try:
            while True:
                page = self._fetch(config, account, campaign, action, index)
                if isinstance(page, zoho_recipients.PageError):  # final: nothing to read here
                    self._cursors.mark_final(
                        campaign, action, page.code, page.reason, self._clock()
                    )
                    run.stopped = f"Zoho {page.code}: {page.reason} (final)"
                    break
                if isinstance(page, str):
                    run.stopped = page
                    break
                if final is not None and run.pages == 0:
                    self._cursors.clear_final(campaign, action)
                upload.write(normalise(r, campaign, action, stamp) for r in page.rows)
                run.pages += 1
                run.rows += len(page.rows)
                index += len(page.rows)
                if page.last:
                    run.stopped = "complete"
                    break
            upload.complete()
        except BaseException:
            upload.abort()
            raise
        if run.rows == 0:
            run.key = None
        if index != start:
            self._cursors.advance(campaign, action, start, index, stamp)
        return run

    def _fetch(
        self, config: RecipientsSyncConfig, account: Account, campaign: str, action: str, index: int
    ) -> zoho_recipients.Page | zoho_recipients.PageError | str:
        """A whole page, a final error, or why the run stops here. A token Zoho refused is
        dropped (here and in the shared store) and the page asked once more with a new one."""
        result = self._fetch_once(config, account, campaign, action, index)
        if isinstance(result, _Refused):
            self._tokens.invalidate(config.account)
            result = self._fetch_once(config, account, campaign, action, index)
            if isinstance(result, _Refused):
                return f"Zoho refused the access token twice ({result.code})"
        return result

    def _fetch_once(
        self, config: RecipientsSyncConfig, account: Account, campaign: str, action: str, index: int
    ) -> zoho_recipients.Page | zoho_recipients.PageError | str | _Refused:
        limit = account.limit(zoho_recipients.QUOTA_API)
        quota_key = quota.quota_key(account.vendor, config.account, zoho_recipients.QUOTA_API)
        try:  # before the slot: a refresh may wait on another Lambda's mint lease
            token = self._tokens.get(config.account, account)
        except Exception as exc:  # a refused mint, a missing secret: this run can do nothing
            return f"no access token: {type(exc).__name__}"
        for _ in range(LATE_SLOTS):
            decision = self._quota.reserve(quota_key, limit)
            if isinstance(decision, Denial):
                return "quota"
            if decision.slot_at >= self._deadline:
                return "time"
            self._sleep(max(0.0, decision.slot_at - self._clock()))
            # a page started before the deadline may run into the time reserved after it
            call_deadline = self._deadline + PAGE_GRACE_SECONDS
            timeout = call_timeout(limit, decision.slot_at, self._clock(), call_deadline)
            if timeout is not None:
                break
        else:
            return "quota"  # slots kept coming too late
        request = zoho_recipients.build(
            campaign,
            action,
            index,
            config.page_size,
            token=token,
            base_url=service_url("campaigns", account.data_centre, account.base_url),
            fmt=config.format,
        )
        request.extensions["timeout"] = timeout.as_dict()
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            return f"transport: {type(exc).__name__}"
        lock_codes = DEFAULT_CODES.with_lock_codes(account.lock_codes).lock
        page = zoho_recipients.parse(response, index, config.page_size, config.format, lock_codes)
        response.close()
        if isinstance(page, zoho_recipients.PageError):
            if page.locked:
                self._quota.record_lock(quota_key, limit.lock_seconds)
                return "locked"
            if page.code in DEFAULT_CODES.token or response.status_code == 401:
                return _Refused(page.code)
            if page.final:
                return page
            return f"Zoho {page.code}: {page.reason}"
        return page


@dataclass(frozen=True, slots=True)
class _Refused:
    """Zoho refused the access token."""

    code: str
