"""Trigger Relay on one machine: the vendor simulator, the local stack, Lambda as processes."""
