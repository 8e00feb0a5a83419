"""RecipientsSyncFunction: on a schedule, Zoho Campaigns recipient data to S3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trigger_relay.observability import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Imported on the first invocation (see functions/trigger/app.py), where a bad routes file
    # or a missing setting fails the cold start with a message that names it.
    from trigger_relay.functions import recipients_sync

    recipients_sync.check_configuration()
    campaigns = event.get("campaigns")  # an on-demand run (trigger-relay sync) names them
    report = recipients_sync.run(context, campaigns if isinstance(campaigns, list) else None)
    return {
        "rows": report.rows,
        "pages": report.pages,
        "skipped": report.skipped,
        "runs": [
            {
                "campaign": r.campaign,
                "action": r.action,
                "from_index": r.start_index,
                "rows": r.rows,
                "stopped": r.stopped,
                "key": r.key,
            }
            for r in report.runs
        ],
    }
