"""RecipientsSyncFunction's work, behind its thin handler."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from trigger_relay.functions import clients
from trigger_relay.functions.settings import SyncSettings
from trigger_relay.observability import logger, metrics
from trigger_relay.pipeline.recipients_sync import (
    SKIPPED,
    STOPS_EVERYTHING,
    RecipientsSync,
    SyncReport,
    iso_ms,
)
from trigger_relay.pipeline.routes import RecipientsSyncConfig, RoutesFile
from trigger_relay.stores.cursors import SyncCursors, SyncLease

# Stop starting pages this long before Lambda's timeout, leaving time to finish the upload.
DEADLINE_RESERVE_SECONDS = 20.0


def check_configuration() -> None:
    """Fail the cold start, not the first run, on a bad routes file or a missing setting."""
    clients.routes(SyncSettings.from_env().routes_file)


def run(context: LambdaContext | None, campaigns: list[str] | None = None) -> SyncReport:
    """Sync the configured campaigns, or just `campaigns` when given (an on-demand run)."""
    settings = SyncSettings.from_env()
    routes = clients.routes(settings.routes_file)
    config = routes.recipients_sync
    if config is None:
        logger.info("no recipients_sync section in the routes file; nothing to do")
        return SyncReport()
    if campaigns:
        config = config.model_copy(update={"campaigns": campaigns})
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 300.0
    dynamodb = clients.aws("dynamodb")
    lease = SyncLease(settings.cursor_table, dynamodb)
    holder = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
    held_until = lease.acquire(holder, ends_at=time.time() + remaining)
    if held_until is not None:
        until = iso_ms(datetime.fromtimestamp(held_until, UTC))
        report = SyncReport(
            skipped=f"another sync run holds the lease until {until}; this run read nothing"
        )
        logger.info("recipients sync skipped", extra={"reason": report.skipped})
        metrics.add_metric(name="SyncRunsSkipped", unit=MetricUnit.Count, value=1)
        return report
    try:
        return _sync(settings, config, routes, dynamodb, remaining)
    finally:
        lease.release(holder)


def _sync(
    settings: SyncSettings,
    config: RecipientsSyncConfig,
    routes: RoutesFile,
    dynamodb: Any,
    remaining: float,
) -> SyncReport:
    sync = RecipientsSync(
        http=clients.http(),
        tokens=clients.minted_tokens(settings.quota_table),
        quota=clients.quota_gate(settings.quota_table),
        cursors=SyncCursors(settings.cursor_table, dynamodb),
        s3=clients.aws("s3"),
        bucket=settings.recipients_bucket,
        deadline=time.time() + max(1.0, remaining - DEADLINE_RESERVE_SECONDS),
    )
    report = sync.run(config, routes.accounts[config.account])
    metrics.add_metric(name="RecipientsSynced", unit=MetricUnit.Count, value=report.rows)
    metrics.add_metric(name="RecipientPagesRead", unit=MetricUnit.Count, value=report.pages)
    failed = [
        r
        for r in report.runs
        if r.stopped not in ("complete", *STOPS_EVERYTHING) and not r.stopped.startswith(SKIPPED)
    ]
    metrics.add_metric(name="SyncFailures", unit=MetricUnit.Count, value=len(failed))
    locks = sum(r.stopped == "locked" for r in report.runs)
    metrics.add_metric(name="VendorLocks", unit=MetricUnit.Count, value=locks)
    return report
