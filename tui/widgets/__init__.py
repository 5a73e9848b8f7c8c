"""Reusable parts of the console's screens."""
