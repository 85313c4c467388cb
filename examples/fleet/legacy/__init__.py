"""Deprecated code kept only while something still needs it."""
