"""The reference target broken in exactly one way per acceptance criterion.

Each builder returns ``reference_impl.p1_target:TARGET`` with one part swapped
out by :func:`dataclasses.replace`: everything else is the reference, so every
other criterion still passes. A builder takes ``root``, a directory it may
write files into (a pytester directory); a pytester run reaches it through the
small module :func:`write_target_module` writes there.

Below the builders: :func:`run_p1` runs the acceptance run in-process,
:class:`Checklist` reads its terminal checklist and :func:`read_report` its JSON.

The broken stores subclass the reference :class:`PolicyStoreV2` and change one
thing. Most do it through the public methods; the two whose flaw lives inside
the reference (what the listener does with a message, what a lost link does to
the cache) override that one private method and say so.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import textwrap
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

# The plugin module, and with it _options and its StashKeys, imported once for the
# session: in-process pytester runs drop the modules they imported, and a plugin
# imported afresh beside an older _acceptance would read the settings under
# another key.
import pytest_quantum_p1.plugin  # noqa: F401
from pytest_quantum_p1 import Bus, Clock, FromURL, P1Target, PolicyStore, from_url
from reference_impl.core.event_bus import CATALOGUE, EventBus, EventSpec
from reference_impl.federation.federated_engine_v2 import FederatedEngineV2
from reference_impl.federation.federation_v2_event_bridge import FederationV2EventBridge
from reference_impl.health import health
from reference_impl.p1_target import TARGET
from reference_impl.services.policy_store_v2 import PolicyStoreV2

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "HIDDEN_EVENT",
    "NOT_SLOW",
    "Builder",
    "Checklist",
    "ChecklistLine",
    "bridge_that_reaches_one_node_of_two",
    "bridge_that_relays_nothing",
    "bus_that_logs_nothing",
    "catalogue_without_an_event",
    "doc_without_the_notice",
    "engine_built_outside_the_bridge",
    "engine_warning_at_itself",
    "engine_without_a_warning",
    "health_reporting_degraded",
    "health_that_raises",
    "legacy_file_left_behind",
    "level_change_with_a_wrong_value",
    "mode_change_without_a_field",
    "module_importing_v2_dynamically",
    "node_status_published_twice",
    "outcomes",
    "read_report",
    "run_p1",
    "shadow_test_with_a_naive_timestamp",
    "store_keeping_its_cache_across_a_lost_link",
    "store_that_ignores_invalidations",
    "store_whose_hits_round_trip",
    "store_with_a_longer_ttl",
    "store_with_a_stalling_hit_path",
    "store_with_a_tiny_cache",
    "target_without_optional_checks",
    "write_target_module",
]

#: ``root -> target``: the reference target with one thing broken.
Builder = Callable[[Path], P1Target]


def write_target_module(root: Path, builder: Builder, *, wire: bool = False) -> str:
    """Write ``broken_target.py`` into ``root``, building ``builder``'s target; return its spec.

    ``root`` must be importable (``pytester.syspathinsert()``); the spec is what
    ``--p1-target`` takes. ``wire``: the same stores in the URL form
    (:func:`on_the_wire`), observed on the wire instead of in the client.
    """
    module = sys.modules.get(builder.__module__)
    if (
        not builder.__module__.startswith("tests.")
        or getattr(module, builder.__name__, None) is not builder
    ):
        raise ValueError(f"{builder!r} is not a module-level builder of a tests module")
    (root / "broken_target.py").write_text(
        textwrap.dedent(
            f"""\
            from pathlib import Path

            from {builder.__module__} import {builder.__name__}
            from tests.plugin.broken_targets import on_the_wire

            TARGET = {builder.__name__}(Path(__file__).resolve().parent)
            if {wire!r}:
                TARGET = on_the_wire(TARGET)
            """
        )
    )
    return "broken_target:TARGET"


def _with_action(name: str, action: Callable[[Bus], Any]) -> P1Target:
    events = tuple(
        dataclasses.replace(event, action=action) if event.name == name else event
        for event in TARGET.required_events
    )
    return dataclasses.replace(TARGET, required_events=events)


class _OwnsItsClient:
    """A store of the client form, given a client of its own made from a URL: the URL form.

    Everything but the life cycle is the wrapped store's (its counters too).
    """

    def __init__(
        self, factory: Callable[[Redis, Clock], PolicyStore], url: str, clock: Clock
    ) -> None:
        import redis.asyncio

        self.client = redis.asyncio.from_url(url)
        self.store = factory(self.client, clock)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def initialize(self) -> None:
        await self.store.initialize()

    async def get_policy(self, name: str) -> Mapping[str, Any]:
        return await self.store.get_policy(name)

    async def update_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        await self.store.update_policy(name, policy)

    async def close(self) -> None:
        try:
            await self.store.close()
        finally:
            await self.client.aclose()


def on_the_wire(target: P1Target) -> P1Target:
    """``target`` with its stores in the URL form: each owns a client made from the URL it is given.

    The same stores, observed on the wire: one suite of planted bugs and
    correct shapes runs over both observation paths.
    """
    factory = target.store_factory
    if isinstance(factory, FromURL):
        return target

    def make(url: str, clock: Clock) -> PolicyStore:
        return _OwnsItsClient(factory, url, clock)

    counters = target.cache_counters
    return dataclasses.replace(
        target,
        store_factory=from_url(make),
        cache_counters=None if counters is None else (lambda store: counters(store.store)),
    )


def _with_store(store_factory: Callable[[Redis, Clock], PolicyStore]) -> P1Target:
    return dataclasses.replace(TARGET, store_factory=store_factory)


def _with_v2(**changes: Any) -> P1Target:
    return dataclasses.replace(TARGET, v2=dataclasses.replace(TARGET.v2, **changes))


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


# --- P1-1 events ------------------------------------------------------------------

#: The event :func:`catalogue_without_an_event` leaves out of the catalogue.
HIDDEN_EVENT: Final = "model.shadow_test.completed"


class _BusHidingAnEvent(EventBus):
    """The reference bus, whose catalogue does not list one event that it still routes."""

    def __init__(self, hidden: str) -> None:
        super().__init__()
        self._hidden = hidden

    @property
    def catalogue(self) -> Mapping[str, EventSpec]:
        return {name: spec for name, spec in super().catalogue.items() if name != self._hidden}


def catalogue_without_an_event(root: Path) -> P1Target:
    """P1-1.catalogue: the bus catalogue does not list ``model.shadow_test.completed``.

    This break cannot be confined to one criterion: the harness records events
    by catalogue name, so ``P1-1.shadow-test`` and ``P1-1.logged`` cannot pass
    either (today they error with ``UnknownEventName``).
    """
    bus = _BusHidingAnEvent(HIDDEN_EVENT)
    return dataclasses.replace(TARGET, bus=lambda: bus)


async def _mode_change_without_a_timestamp(bus: Bus) -> Mapping[str, Any]:
    await bus.publish("ai.hfos.mode_changed", {"old_mode": "normal", "new_mode": "defensive"})
    return {"old_mode": "normal", "new_mode": "defensive"}


def mode_change_without_a_field(root: Path) -> P1Target:
    """P1-1.hfos-mode: the mode change is published without its ``timestamp``."""
    return _with_action("ai.hfos.mode_changed", _mode_change_without_a_timestamp)


async def _level_change_announcing_the_old_level(bus: Bus) -> Mapping[str, Any]:
    await bus.publish(
        "safety.governor.level_changed",
        {"old_level": 1, "new_level": 1, "reason": "manual_override", "timestamp": _utc_now()},
    )
    return {"old_level": 1, "new_level": 3, "reason": "manual_override"}


def level_change_with_a_wrong_value(root: Path) -> P1Target:
    """P1-1.safety-level: a change from level 1 to 3 is published with ``new_level`` 1."""
    return _with_action("safety.governor.level_changed", _level_change_announcing_the_old_level)


async def _shadow_test_with_a_naive_timestamp(bus: Bus) -> Mapping[str, Any]:
    await bus.publish(
        "model.shadow_test.completed",
        {
            "model_id": "momentum-v7",
            "verdict": "pass",
            "metrics": {"agreement_rate": 1.0},
            "samples": 4,
            "timestamp": "2025-12-03T09:30:00",  # what datetime.now().isoformat() gives
        },
    )
    return {"model_id": "momentum-v7", "verdict": "pass", "samples": 4}


def shadow_test_with_a_naive_timestamp(root: Path) -> P1Target:
    """P1-1.shadow-test: the completed shadow test carries a timestamp without a UTC offset."""
    return _with_action("model.shadow_test.completed", _shadow_test_with_a_naive_timestamp)


async def _node_status_announced_twice(bus: Bus) -> Mapping[str, Any]:
    engine = FederationV2EventBridge(bus).engine  # type: ignore[arg-type]  # the reference bus
    await engine.update_node_status("v2-node-1", "online")  # publishes the event ...
    await bus.publish(  # ... and so does its caller
        "federation.node.status_changed",
        {
            "node_id": "v2-node-1",
            "old_status": "unknown",
            "new_status": "online",
            "timestamp": _utc_now(),
        },
    )
    return {"node_id": "v2-node-1", "old_status": "unknown", "new_status": "online"}


def node_status_published_twice(root: Path) -> P1Target:
    """P1-1.node-status: one node status change is published twice."""
    return _with_action("federation.node.status_changed", _node_status_announced_twice)


def bus_that_logs_nothing(root: Path) -> P1Target:
    """P1-1.logged: a bus whose catalogue marks no event as monitored, so it logs none."""
    bus = EventBus(
        {name: dataclasses.replace(spec, monitored=False) for name, spec in CATALOGUE.items()}
    )
    return dataclasses.replace(TARGET, bus=lambda: bus)


# --- P1-2 cache -------------------------------------------------------------------


class _StallingStore(PolicyStoreV2):
    """Every ``every``-th read first stalls the process for ``stall_s`` (a blocking sweep)."""

    def __init__(self, redis: Redis, *, clock: Clock, every: int, stall_s: float) -> None:
        super().__init__(redis, clock=clock)
        self._every = every
        self._stall_s = stall_s
        self._reads = 0

    async def get_policy(self, name: str) -> dict[str, Any]:
        self._reads += 1
        if self._reads % self._every == 0:
            deadline = time.perf_counter() + self._stall_s
            while time.perf_counter() < deadline:  # busy, like a blocking call
                pass
        return await super().get_policy(name)


def store_with_a_stalling_hit_path(root: Path) -> P1Target:
    """P1-2.cached-read: every 50th read stalls for 3 ms (a blocking call on the hit path).

    2 % of reads take 3 ms, so the per-call p99 is a stalled read, over the
    seed's 1 ms budget, while the median (what ``P1-2.cold-vs-warm`` compares)
    does not move. Averaged over batches of reads, the stalls would hide.
    """
    return _with_store(
        lambda redis, clock: _StallingStore(redis, clock=clock, every=50, stall_s=0.003)
    )


class _HitCountingStore(PolicyStoreV2):
    """Adds its hits to a counter in Redis every ``every`` hits: a round trip on the hit path."""

    def __init__(self, redis: Redis, *, clock: Clock, every: int) -> None:
        super().__init__(redis, clock=clock)
        self._client = redis
        self._every = every

    async def get_policy(self, name: str) -> dict[str, Any]:
        hits = self.stats.hits
        policy = await super().get_policy(name)
        if self.stats.hits > hits and self.stats.hits % self._every == 0:
            await self._client.incrby("policy-stats:hits", self._every)  # not a storage read
        return policy


def store_whose_hits_round_trip(root: Path) -> P1Target:
    """P1-2.cold-vs-warm: every 4th cache hit also pays a Redis round trip.

    A hit then costs about a quarter of a storage read, whatever the machine:
    the cache is only 3-4x faster than storage (10x required), yet a hit stays
    far under the 1 ms budget of ``P1-2.cached-read`` and is still counted as a
    hit (``INCRBY`` is not a storage read).
    """
    return _with_store(lambda redis, clock: _HitCountingStore(redis, clock=clock, every=4))


class _SmallCacheStore(PolicyStoreV2):
    """Keeps only the ``capacity`` policies read most recently (an undersized LRU)."""

    def __init__(self, redis: Redis, *, clock: Clock, capacity: int) -> None:
        super().__init__(redis, clock=clock)
        self._capacity = capacity
        self._recent: OrderedDict[str, None] = OrderedDict()

    async def get_policy(self, name: str) -> dict[str, Any]:
        policy = await super().get_policy(name)
        self._recent[name] = None
        self._recent.move_to_end(name)
        if len(self._recent) > self._capacity:
            evicted, _ = self._recent.popitem(last=False)
            self.invalidate(evicted)  # local only
        return policy


def store_with_a_tiny_cache(root: Path) -> P1Target:
    """P1-2.hit-rate: the cache holds 10 policies; the workload reads 20 (Zipf-distributed).

    The other criteria read one policy at a time, which such a cache holds.
    """
    return _with_store(lambda redis, clock: _SmallCacheStore(redis, clock=clock, capacity=10))


def store_with_a_longer_ttl(root: Path) -> P1Target:
    """P1-2.ttl: the stores keep entries 15 s, while the target declares a 10 s TTL.

    ``P1-2.cold-vs-warm`` still sees its cold reads: it moves the clock by twice
    the declared TTL before each.
    """
    return _with_store(lambda redis, clock: PolicyStoreV2(redis, clock=clock, ttl=15.0))


def _overridable(name: str) -> None:
    """Check the reference store still has the private method a broken store overrides.

    Were it renamed, the override would silently stop breaking anything.
    """
    if not callable(getattr(PolicyStoreV2, name, None)):
        raise AttributeError(f"PolicyStoreV2.{name} is gone: update {__name__}")


class _StoreIgnoringInvalidations(PolicyStoreV2):
    """Reads every message on the invalidation channel, and drops nothing."""

    def _apply(self, data: object) -> None:  # the reference's handler of one message
        pass


def store_that_ignores_invalidations(root: Path) -> P1Target:
    """P1-2.invalidation: the stores' listeners ignore what they receive.

    Only the writer drops its own copy (in ``update_policy``); the other
    instances keep theirs until the TTL.
    """
    _overridable("_apply")
    return _with_store(lambda redis, clock: _StoreIgnoringInvalidations(redis, clock=clock))


class _StoreKeepingItsCacheAcrossALostLink(PolicyStoreV2):
    """Does not flush when its invalidation link goes down or comes back.

    Invalidations sent while the link was down are lost, so entries cached
    before may be stale. The reference flushes in ``_set_link`` (and bumps the
    epoch that keeps in-flight misses from filling); this only records the state.
    """

    def _set_link(self, *, up: bool) -> None:
        self._link_up = up


def store_keeping_its_cache_across_a_lost_link(root: Path) -> P1Target:
    """P1-2.no-stale-reads: a lost invalidation link does not flush the cache.

    Only the property-based search drops links, so no other criterion notices.
    """
    _overridable("_set_link")
    return _with_store(
        lambda redis, clock: _StoreKeepingItsCacheAcrossALostLink(redis, clock=clock)
    )


# --- P1-3 federation v2 -------------------------------------------------------------


def legacy_file_left_behind(root: Path) -> P1Target:
    """P1-3.files-removed: a fifth legacy file must be gone, and it is still there."""
    leftover = root / "federation" / "v2_protocol.py"
    leftover.parent.mkdir(exist_ok=True)
    leftover.write_text('"""Federation v2 wire protocol (legacy)."""\n')
    return _with_v2(removed_paths=(*TARGET.v2.removed_paths, leftover))


def module_importing_v2_dynamically(root: Path) -> P1Target:
    """P1-3.no-direct-imports: a scanned package reaches v2 through ``importlib``."""
    package = root / "reports_pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "nodes.py").write_text(
        textwrap.dedent(
            """\
            import importlib


            def v2_nodes():
                engine_v2 = importlib.import_module("reference_impl.federation.federated_engine_v2")
                return engine_v2.FederatedEngineV2().nodes
            """
        )
    )
    return _with_v2(source_roots=(*TARGET.v2.source_roots, package))


class EngineWarningAtItself:
    """A v2 engine whose DeprecationWarning points at its own ``__init__`` (``stacklevel=1``)."""

    def __init__(self) -> None:
        warnings.warn("EngineWarningAtItself is deprecated", DeprecationWarning, stacklevel=1)


class EngineWithoutAWarning:
    """A v2 engine that does not warn at all."""


def engine_warning_at_itself(root: Path) -> P1Target:
    """P1-3.deprecation-warning: the engine warns with ``stacklevel=1``."""
    return _with_v2(engine_class=f"{__name__}:{EngineWarningAtItself.__name__}")


def engine_without_a_warning(root: Path) -> P1Target:
    """P1-3.deprecation-warning: constructing the engine warns nothing."""
    return _with_v2(engine_class=f"{__name__}:{EngineWithoutAWarning.__name__}")


async def _node_status_without_the_bridge(bus: Bus) -> Mapping[str, Any]:
    engine = FederatedEngineV2(bus)  # type: ignore[arg-type]  # the reference bus
    await engine.update_node_status("v2-node-1", "online")
    return {"node_id": "v2-node-1", "old_status": "unknown", "new_status": "online"}


def engine_built_outside_the_bridge(root: Path) -> P1Target:
    """P1-3.bridge-only-at-runtime: the node status action constructs the v2 engine itself.

    This module is outside the target's source roots, so the static scan of
    ``P1-3.no-direct-imports`` does not see its import: only the run-time guard can.
    """
    return _with_action("federation.node.status_changed", _node_status_without_the_bridge)


async def _relay_through_a_stopped_bridge(
    bus: Bus, payload: Mapping[str, Any]
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    received: dict[str, list[Mapping[str, Any]]] = {"probe-node-1": [], "probe-node-2": []}
    bridge = FederationV2EventBridge(bus)  # type: ignore[arg-type]  # the reference bus
    for node_id, inbox in received.items():

        async def node(message: Mapping[str, Any], inbox: list[Mapping[str, Any]] = inbox) -> None:
            inbox.append(message["payload"])

        bridge.engine.register_node(node_id, node)
    # bridge.start() is missing: the bridge hears nothing, the nodes get nothing.
    await bus.publish("federation.round.completed", payload)
    return received


async def _relay_to_one_node_of_two(
    bus: Bus, payload: Mapping[str, Any]
) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    received: dict[str, list[Mapping[str, Any]]] = {"probe-node-1": [], "probe-node-2": []}
    bridge = FederationV2EventBridge(bus)  # type: ignore[arg-type]  # the reference bus

    async def reliable(message: Mapping[str, Any]) -> None:
        received["probe-node-1"].append(message["payload"])

    async def lossy(message: Mapping[str, Any]) -> None:
        return None  # the transport swallows the message: node 2 never sees it

    bridge.engine.register_node("probe-node-1", reliable)
    bridge.engine.register_node("probe-node-2", lossy)
    bridge.start()
    try:
        await bus.publish("federation.round.completed", payload)
    finally:
        bridge.stop()
    return received


def bridge_that_relays_nothing(root: Path) -> P1Target:
    """P1-3.bridge-relays: the relay probe's bridge is never started."""
    return _with_v2(relay_probe=_relay_through_a_stopped_bridge)


def bridge_that_reaches_one_node_of_two(root: Path) -> P1Target:
    """P1-3.bridge-relays: one of two v2 nodes never receives the relayed event."""
    return _with_v2(relay_probe=_relay_to_one_node_of_two)


def doc_without_the_notice(root: Path) -> P1Target:
    """P1-3.docs: a fourth architecture doc, without the federation notice."""
    doc = root / "FEDERATION_RUNBOOK.md"
    doc.write_text("# Federation runbook\n\nRestart the v2 nodes one at a time.\n")
    return _with_v2(docs=(*TARGET.v2.docs, doc))


async def _health_with_a_store_never_started(bus: Bus, redis: Redis) -> Mapping[str, Any]:
    store = PolicyStoreV2(redis)  # never initialised: its invalidation link is down
    return await health(bus, redis, store=store)  # type: ignore[arg-type]  # the reference bus


def health_reporting_degraded(root: Path) -> P1Target:
    """deploy.health: the health check reports on a store whose invalidation link is down."""
    return dataclasses.replace(TARGET, health=_health_with_a_store_never_started)


async def _health_that_raises(bus: Bus, redis: Redis) -> Mapping[str, Any]:
    raise RuntimeError("health endpoint crashed")


def health_that_raises(root: Path) -> P1Target:
    """deploy.health errors: the health check itself raises (a broken target, not a verdict)."""
    return dataclasses.replace(TARGET, health=_health_that_raises)


def target_without_optional_checks(root: Path) -> P1Target:
    """Not broken: a target that declares no relay probe and no health check (both skip)."""
    return dataclasses.replace(
        TARGET, health=None, v2=dataclasses.replace(TARGET.v2, relay_probe=None)
    )


# --- running the acceptance run and reading its checklist -----------------------------


@dataclass
class ChecklistLine:
    """One criterion of the terminal checklist: its mark, key figure and message."""

    mark: str
    detail: str
    message: list[str] = field(default_factory=list)


@dataclass
class Checklist:
    """The ``quantum-p1 acceptance`` section of a run's terminal output, parsed."""

    #: Task headings, in order, with the criterion ids under each.
    tasks: dict[str, list[str]]
    lines: dict[str, ChecklistLine]
    #: The last line: ``"18 passed"``, ``"1 failed, 17 passed"`` ...
    counts: str

    @classmethod
    def parse(cls, output: Sequence[str]) -> Checklist:
        start = next(i for i, line in enumerate(output) if " quantum-p1 acceptance " in line)
        tasks: dict[str, list[str]] = {}
        lines: dict[str, ChecklistLine] = {}
        body: list[str] = []
        for line in output[start + 1 :]:
            if line.startswith(("=", "report: ")):
                break
            body.append(line)
        *entries, counts = body
        current: list[str] = []
        last: ChecklistLine | None = None
        for line in entries:
            criterion = _CHECKLIST_LINE.match(line)
            if criterion:
                mark, name, detail = criterion.groups()
                last = lines[name] = ChecklistLine(mark, detail)
                current.append(name)
            elif line.startswith(" " * 10) and last is not None:
                last.message.append(line[10:])
            else:
                current = tasks[line] = []
                last = None
        return cls(tasks, lines, counts)


_CHECKLIST_LINE: Final = re.compile(r"  \[(PASS|FAIL|ERROR|SKIP) *\] (\S+)  +(.*)")


#: Deselects the one slow criterion (a Hypothesis search of about 3 s).
NOT_SLOW: Final = ("-k", "not no-stale-reads")


def run_p1(
    pytester: pytest.Pytester, *args: str, target: Builder | None = None, wire: bool = False
) -> pytest.RunResult:
    """``pytest -p quantum_p1 --p1 *args`` in-process, against ``target``'s broken target if given.

    Without ``target`` (and no ``--p1-target`` in ``args``) it checks the bundled
    reference backend, named explicitly as a user would: ``--p1-target=reference``.
    ``wire``: ``target``'s stores in the URL form (:func:`on_the_wire`).
    """
    if target is not None:
        pytester.syspathinsert()
        spec = write_target_module(pytester.path, target, wire=wire)
        args = (f"--p1-target={spec}", *args)
    elif not any(arg.startswith("--p1-target") for arg in args):
        args = ("--p1-target=reference", *args)
    return pytester.runpytest("-p", "quantum_p1", "--p1", *args)


def read_report(path: Path) -> dict[str, Any]:
    """The JSON report at ``path``."""
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return report


def outcomes(report: Mapping[str, Any]) -> dict[str, str]:
    """``{criterion id: outcome}`` of a JSON report, in its order."""
    return {criterion["id"]: criterion["outcome"] for criterion in report["criteria"]}
