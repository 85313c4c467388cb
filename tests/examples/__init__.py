"""Tests of the worked examples under ``examples/``: the backends and their adapters."""
