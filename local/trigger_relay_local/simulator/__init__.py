"""A vendor simulator: a real HTTP server that answers as the vendors' API pages document
(tests/contracts/README.md lists them)."""

from .server import Simulator
from .state import SimConfig

__all__ = ["SimConfig", "Simulator"]
