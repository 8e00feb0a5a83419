"""A vendor simulator: a real HTTP server that answers as the vendors' API pages document
(tests/contracts/README.md lists them)."""

from collections.abc import Callable

from trigger_relay_local.simulator.server import Simulator
from trigger_relay_local.simulator.state import SimConfig
from trigger_relay_local.simulator.vendors import SIMULATED

# What an account's secret holds on the local stack, by the routes file's vendor name
ACCOUNT_SECRETS: dict[str, Callable[[SimConfig], dict[str, str]]] = {
    name: module.account_secret for name, module in SIMULATED.items()
}

__all__ = ["ACCOUNT_SECRETS", "SimConfig", "Simulator"]
