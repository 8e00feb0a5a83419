"""A vendor simulator: a real HTTP server that answers as the vendors' API pages document
(tests/contracts/README.md lists them)."""

from collections.abc import Callable

from trigger_relay_local.simulator import altcraft, zoho
from trigger_relay_local.simulator.server import Simulator
from trigger_relay_local.simulator.state import SimConfig

# Each simulated vendor, by the routes file's vendor name: what its accounts' secrets hold here
ACCOUNT_SECRETS: dict[str, Callable[[SimConfig], dict[str, str]]] = {
    "zoho": zoho.account_secret,
    "altcraft": altcraft.account_secret,
}

__all__ = ["ACCOUNT_SECRETS", "SimConfig", "Simulator"]
