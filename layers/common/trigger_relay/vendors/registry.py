"""Every vendor, found in its package under ``vendors/``, and every trigger API by the action
name the routes file uses, with its documented limit.

A vendor package exports ``VENDOR``; nothing here names one. ``register`` adds a vendor that
lives elsewhere (a test, an extension) to the same tables.
"""

from __future__ import annotations

import importlib
import pkgutil

from trigger_relay import vendors
from trigger_relay.stores.quota import Limit
from trigger_relay.vendors.vendor import TriggerApi, Vendor

VENDORS: dict[str, Vendor] = {}
APIS: dict[str, TriggerApi] = {}
DEFAULT_LIMITS: dict[str, Limit] = {}


def register(vendor: Vendor) -> None:
    """Add a vendor, its APIs and its limits. A name, action or limit already taken is refused."""
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


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(vendors.__path__), key=lambda i: i.name):
        if info.ispkg:
            package = importlib.import_module(f"{vendors.__name__}.{info.name}")
            found = getattr(package, "VENDOR", None)
            if not isinstance(found, Vendor):
                raise ImportError(
                    f"{package.__name__} is a package in vendors/ without a VENDOR = Vendor(...)"
                )
            register(found)


_discover()
