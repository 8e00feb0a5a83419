"""Every trigger API by the action name the routes file uses, with its documented limit."""

from __future__ import annotations

from ..quota import Limit
from .zoho_trigger import CAMPAIGNS_WORKFLOW, MA_JOURNEY, ZohoTrigger

TriggerApi = ZohoTrigger

APIS: dict[str, TriggerApi] = {api.action: api for api in (CAMPAIGNS_WORKFLOW, MA_JOURNEY)}

# The seeds' numbers: calls per 5 minutes, then a 30-minute lock.
DEFAULT_LIMITS: dict[str, Limit] = {
    CAMPAIGNS_WORKFLOW.action: Limit(calls=500, window_seconds=300, lock_seconds=1800),
    MA_JOURNEY.action: Limit(calls=100, window_seconds=300, lock_seconds=1800),
    "zoho_campaigns.recipients": Limit(calls=500, window_seconds=300, lock_seconds=1800),
}
