"""Vendor trigger APIs: one module per API, each with pure `build` and `parse`."""
