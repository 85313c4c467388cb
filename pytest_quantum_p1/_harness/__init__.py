"""The harness's hands on the stores: instances on one Redis, observed, steered and measured.

- :mod:`.portal`: an event loop in a thread; sync/async twins over one coroutine; :class:`~.portal.Signal`;
- :mod:`.pubsub`: :class:`~.pubsub.ControlledPubSub`: hold, deliver, drop, duplicate, inject, disconnect; deliveries;
- :mod:`.observed`: :class:`~.observed.ObservedRedis`: the store's client, storage reads counted and held, publishes gated;
- :mod:`.member`: one store instance as the cluster drives it; :class:`~.member.LocalMember` hosts one here;
- :mod:`.factory`: store factories by import string (what child processes are given);
- :mod:`.process`: :class:`~.process.ProcessMember` and the child process hosting a local member;
- :mod:`.figures`: updates, propagation times and :class:`~.figures.ClusterStats`;
- :mod:`.cluster`: :class:`~.cluster.PolicyCluster`: N instances, settle, verdicts, faults.

Importing this package imports redis; the plugin imports it only when a fixture needs it.
"""

from pytest_quantum_p1._harness.cluster import ClusterTimeout, PolicyCluster, PolicyClusterFactory
from pytest_quantum_p1._harness.factory import resolve_store_factory, target_of
from pytest_quantum_p1._harness.figures import ClusterStats
from pytest_quantum_p1._harness.observed import ObservedRedis
from pytest_quantum_p1._harness.portal import Portal
from pytest_quantum_p1._harness.process import MemberProcessError
from pytest_quantum_p1._harness.pubsub import (
    BarrierBroken,
    ControlledPubSub,
    Delivery,
    Message,
    as_text,
)

__all__ = [
    "BarrierBroken",
    "ClusterStats",
    "ClusterTimeout",
    "ControlledPubSub",
    "Delivery",
    "MemberProcessError",
    "Message",
    "ObservedRedis",
    "PolicyCluster",
    "PolicyClusterFactory",
    "Portal",
    "as_text",
    "resolve_store_factory",
    "target_of",
]
