"""Trigger Relay on one machine: the vendor simulator, the embedded local stack and the CLI."""
