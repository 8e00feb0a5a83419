"""The simulated vendors by the routes file's vendor name. Each module answers as its vendor's
pages document and exports ROUTES, BEARER_APIS, account_secret, invalid_token and locked."""

from types import ModuleType

from trigger_relay_local.simulator import altcraft, zoho

SIMULATED: dict[str, ModuleType] = {"zoho": zoho, "altcraft": altcraft}
