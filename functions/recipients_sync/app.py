"""RecipientsSyncFunction: on a schedule, Zoho Campaigns recipient data to S3."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from trigger_relay import sync_service
from trigger_relay.observability import logger, metrics

# A bad routes file or a missing setting fails here, at cold start.
sync_service.check_configuration()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    campaigns = event.get("campaigns")  # an on-demand run (trigger-relay sync) names them
    report = sync_service.run(context, campaigns if isinstance(campaigns, list) else None)
    return {
        "rows": report.rows,
        "pages": report.pages,
        "runs": [
            {
                "campaign": r.campaign,
                "action": r.action,
                "rows": r.rows,
                "stopped": r.stopped,
                "key": r.key,
            }
            for r in report.runs
        ],
    }
