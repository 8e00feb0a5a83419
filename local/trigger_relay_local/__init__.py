"""Trigger Relay on one machine: the vendor simulator and the embedded local stack."""
