"""The simulated vendors, one module each, by the routes file's vendor name (the module's name).

Each answers as its vendor's pages document and exports ROUTES (its endpoints), BEARER_APIS
and TOKEN_SCHEME (the calls that carry an access token, and how), LIMITS (the documented call
limits), learn (what a route needs the vendor to know), account_secret, invalid_token and
locked. A module added here is found; the server and the local stack name no vendor.
state.SimConfig holds what the simulated vendors know (their workflows, triggers, campaigns).
"""

import importlib
import pkgutil
from types import ModuleType

SIMULATED: dict[str, ModuleType] = {
    info.name: importlib.import_module(f"{__name__}.{info.name}")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
}
# The module that answers each API, by the API's name
VENDOR_OF: dict[str, ModuleType] = {
    api: module for module in SIMULATED.values() for _, _, api, _ in module.ROUTES
}
