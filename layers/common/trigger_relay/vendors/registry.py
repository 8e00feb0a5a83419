"""Every vendor, found in its package under ``vendors/``, and every trigger API by the action
name the routes file uses, with its documented limit.

A vendor package exports ``VENDOR`` (named as the package); nothing here names one. Packages
are imported when first asked for, so a cold start imports the vendors its routes file names:
a Zoho-only file doesn't import Altcraft's package (bench/bench_coldstart.py measures what that
saves). Zoho's is always imported: the recipients sync is built on its API (routes.py). The
tables below hold what is loaded so far; ask through ``vendor``, ``api``, ``limit``, ``names``.
``register`` adds a vendor that lives elsewhere (a test, an extension) to the same tables.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

from trigger_relay import vendors
from trigger_relay.stores.quota import Limit
from trigger_relay.vendors.vendor import TriggerApi, Vendor

VENDORS: dict[str, Vendor] = {}
APIS: dict[str, TriggerApi] = {}
DEFAULT_LIMITS: dict[str, Limit] = {}
# first loads and registrations one at a time: two threads asking for a vendor load it once
_LOCK = threading.RLock()


def register(vendor: Vendor) -> None:
    """Add a vendor, its APIs and its limits. A name, action or limit already taken, by a
    vendor registered or by a package not yet imported, is refused."""
    with _LOCK:
        load_all()
        _register(vendor)


def _register(vendor: Vendor) -> None:
    taken = (
        ({vendor.name} & VENDORS.keys())
        | ({a.action for a in vendor.apis} & APIS.keys())
        | (vendor.limits.keys() & DEFAULT_LIMITS.keys())
    )
    if taken:
        raise ValueError(f"already registered: {sorted(taken)}")
    for api in vendor.apis:
        if api.vendor != vendor.name or api.quota_api not in vendor.limits:
            raise ValueError(f"{api.action}: vendor {api.vendor!r}, no limit for {api.quota_api}")
    VENDORS[vendor.name] = vendor
    APIS.update({api.action: api for api in vendor.apis})
    DEFAULT_LIMITS.update(vendor.limits)


def unregister(name: str) -> None:
    vendor = VENDORS.pop(name)
    for api in vendor.apis:
        APIS.pop(api.action, None)
    for key in vendor.limits:
        DEFAULT_LIMITS.pop(key, None)


def _packages() -> list[str]:
    """The vendor packages under vendors/, by name, without importing them."""
    return sorted(i.name for i in pkgutil.iter_modules(vendors.__path__) if i.ispkg)


def _load(name: str) -> None:
    package = importlib.import_module(f"{vendors.__name__}.{name}")
    found = getattr(package, "VENDOR", None)
    if not isinstance(found, Vendor) or found.name != name:
        raise ImportError(
            f"{package.__name__} is a package in vendors/ without a VENDOR = Vendor(name={name!r})"
        )
    _register(found)


def vendor(name: str) -> Vendor | None:
    """The vendor of that name, its package imported on first use; None if there is none."""
    if name not in VENDORS:
        with _LOCK:
            if name not in VENDORS and name in _packages():
                _load(name)
    return VENDORS.get(name)


def load_all() -> None:
    with _LOCK:
        for name in _packages():
            vendor(name)


def names() -> list[str]:
    load_all()
    return sorted(VENDORS)


def api(action: str) -> TriggerApi | None:
    """The trigger API of a routes file's action; every package is loaded to look for one that
    isn't loaded yet."""
    if action not in APIS:
        load_all()
    return APIS.get(action)


def actions() -> list[str]:
    load_all()
    return sorted(APIS)


def limit(quota_api: str) -> Limit | None:
    """A quota API's documented limit, or None for one no vendor has."""
    if quota_api not in DEFAULT_LIMITS:
        load_all()
    return DEFAULT_LIMITS.get(quota_api)
