"""fleet with one planted bug, for the acceptance tests: its listener is deaf to named invalidations.

The bug is a realistic one: the handler reads the invalidated name under the
wrong key (``"policy"`` instead of ``"name"``), finds nothing and drops nothing.
Everything else (garbage handling, link loss, the writer's own copy) is
fleet's correct code. Target: ``tests.examples.broken_fleet:TARGET``, with
``examples/`` and the repository root on the path.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import fleet_p1_target  # type: ignore[import-not-found]
from fleet.cache import policies  # type: ignore[import-not-found]

from pytest_quantum_p1 import Clock, PolicyStore, from_url

__all__ = ["TARGET", "DeafCache"]


class DeafCache(policies.PolicyCache):  # type: ignore[misc]
    """fleet's cache, but a named invalidation from another instance drops nothing."""

    def _on_message(self, message: Mapping[str, Any]) -> None:
        try:
            body = json.loads(message["data"]) if message.get("type") == "message" else None
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("op") == "invalidate":
            name = body.get("policy")  # the bug: fleet's messages carry it under "name"
            if isinstance(name, str):
                self._invalidate(name)
            return
        super()._on_message(message)


def _deaf(url: str, clock: Clock) -> PolicyStore:
    store: PolicyStore = DeafCache(url, clock=clock)
    return store


TARGET = dataclasses.replace(
    fleet_p1_target.TARGET, name="fleet-deaf", store_factory=from_url(_deaf)
)
