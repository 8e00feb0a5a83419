"""A vendor simulator: a real HTTP server that answers as the vendor API seeds document."""

from .server import Simulator
from .state import SimConfig

__all__ = ["SimConfig", "Simulator"]
