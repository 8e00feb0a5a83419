"""RecipientsSyncFunction's work, behind its thin handler."""

from __future__ import annotations

import time

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from . import clients
from .observability import logger, metrics
from .recipients_sync import SKIPPED, STOPS_EVERYTHING, RecipientsSync, SyncCursors, SyncReport
from .settings import SyncSettings

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
    sync = RecipientsSync(
        http=clients.http(),
        tokens=clients.zoho_tokens(settings.quota_table),
        quota=clients.quota_gate(settings.quota_table),
        cursors=SyncCursors(settings.cursor_table, clients.aws("dynamodb")),
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
