"""Zoho: Campaigns and Marketing Automation, at the account's data centre, with OAuth tokens."""

from trigger_relay.stores.quota import Limit
from trigger_relay.vendors.vendor import Vendor
from trigger_relay.vendors.zoho.common import DATA_CENTRES
from trigger_relay.vendors.zoho.oauth import REFRESH_GRANT
from trigger_relay.vendors.zoho.recipients import QUOTA_API as RECIPIENTS
from trigger_relay.vendors.zoho.trigger import CAMPAIGNS_WORKFLOW, MA_JOURNEY

# The documented numbers: calls per 5 minutes, then a 30-minute lock (the trigger pages' and
# the recipients page's "API limits").
VENDOR = Vendor(
    name="zoho",
    apis=(CAMPAIGNS_WORKFLOW, MA_JOURNEY),
    limits={
        CAMPAIGNS_WORKFLOW.action: Limit(calls=500, window_seconds=300, lock_seconds=1800),
        MA_JOURNEY.action: Limit(calls=100, window_seconds=300, lock_seconds=1800),
        RECIPIENTS: Limit(calls=500, window_seconds=300, lock_seconds=1800),
    },
    grant=REFRESH_GRANT,
    data_centres=tuple(DATA_CENTRES),
    default_data_centre="com",  # zoho.com, the US data centre
)
