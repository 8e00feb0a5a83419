"""Trigger Relay: app events to marketing vendors' trigger APIs, batched and rate limited."""

__version__ = "0.1.0"
