"""Networking helpers that are part of the live system."""
