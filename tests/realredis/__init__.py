"""Real Redis at scale: cross-process clusters, faults and load on private redis-servers.

What only these tests need lives here, by name, because child processes import
it so: a process-backed cluster is given ``"tests.realredis:exploding_factory"``
(or ``"tests.stores:SwallowsMessages"`` for a toy store), never the object
itself. Nothing here touches a Redis the tests did not start.
"""

from __future__ import annotations

from typing import Any, Final

from pytest_quantum_p1._target import Clock, PolicyStore
from reference_impl.p1_target import TARGET

#: The reference backend's target, as child processes import it.
REFERENCE: Final = "reference_impl.p1_target:TARGET"
REFERENCE_TTL: Final = TARGET.policy_ttl
#: The issue's bound on recovering after a fault.
RECOVERY_BOUND_S: Final = 1.0


def exploding_factory(redis: Any, clock: Clock) -> PolicyStore:
    """A factory that fails when a child process calls it."""
    raise RuntimeError("exploding_factory: this store cannot be built")
