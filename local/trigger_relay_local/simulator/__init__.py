"""A vendor simulator: a real HTTP server that answers as the vendors' API pages document
(tests/contracts/README.md lists them)."""

from trigger_relay_local.simulator.server import Simulator
from trigger_relay_local.simulator.state import SimConfig

__all__ = ["SimConfig", "Simulator"]
