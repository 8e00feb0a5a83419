"""Altcraft: bulk launch, launch v1.1 and the v1.0 link, at the account's own host, with the
API token from the account's secret."""

from trigger_relay.stores.quota import Limit
from trigger_relay.vendors.altcraft.bulk import ALTCRAFT_BULK
from trigger_relay.vendors.altcraft.link import ALTCRAFT_LINK
from trigger_relay.vendors.altcraft.trigger import ALTCRAFT_TRIGGER
from trigger_relay.vendors.vendor import Vendor

# Altcraft documents no call limit; these defaults keep a runaway backlog polite and are meant
# to be overridden in the routes file.
VENDOR = Vendor(
    name="altcraft",
    apis=(ALTCRAFT_BULK, ALTCRAFT_TRIGGER, ALTCRAFT_LINK),
    limits={
        ALTCRAFT_BULK.action: Limit(calls=600, window_seconds=60, lock_seconds=60),
        ALTCRAFT_TRIGGER.action: Limit(calls=6000, window_seconds=60, lock_seconds=60),
        ALTCRAFT_LINK.action: Limit(calls=6000, window_seconds=60, lock_seconds=60),
    },
)
