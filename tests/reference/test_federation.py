"""Federation: v3 rounds, the deprecated v2 engine, the bridge, and the P1-3 removal."""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import inspect
import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import reference_impl
from reference_impl.core.event_bus import EventBus, get_event_bus
from reference_impl.errors import InvalidPayloadError, P1Error
from reference_impl.federation import federation_v2_event_bridge
from reference_impl.federation.federated_engine_v2 import (
    FederatedEngineV2,
    FederationV2Error,
    InvalidNodeError,
    InvalidNodeStatusError,
)
from reference_impl.federation.federation_v2_event_bridge import FederationV2EventBridge
from reference_impl.federation.federation_v3 import FederationRoundError, FederationV3
from reference_impl.p1_target import TARGET

Recorded = list[tuple[str, dict[str, Any]]]
Message = Mapping[str, Any]

PACKAGE = Path(reference_impl.__file__).parent
ENGINE_MODULE = "reference_impl.federation.federated_engine_v2"
BRIDGE_MODULE = "reference_impl.federation.federation_v2_event_bridge"
REMOVED = ("v2_protocol.py", "v2_consensus.py", "v2_node_discovery.py", "v2_heartbeat.py")
DEPRECATED = "FederatedEngineV2 is deprecated"
NOTICE = (
    "## Federation Architecture",
    "**Current:** Federation v3 (EventBus-based)",
    "**Deprecated:** Federation v2 (retained for bridge compatibility only)",
    "**Bridge:** `federation_v2_event_bridge.py` maintains v2 protocol compatibility",
)


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def published(bus: EventBus) -> Recorded:
    """Every event published on ``bus`` during the test, in order."""
    events: Recorded = []
    for name in bus.catalogue:
        bus.subscribe(name, lambda n, p: events.append((n, dict(p))))
    return events


@pytest.fixture
def engine(bus: EventBus) -> FederatedEngineV2:
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        return FederatedEngineV2(bus)


class Node:
    """An in-memory v2 node transport that records what it receives."""

    def __init__(self, error: Exception | None = None) -> None:
        self.received: list[Message] = []
        self.error = error

    async def __call__(self, message: Message) -> None:
        if self.error is not None:
            raise self.error
        self.received.append(message)


async def hang(message: Message) -> None:
    await asyncio.Event().wait()


def status_changes(published: Recorded) -> list[tuple[str, str, str]]:
    return [
        (p["node_id"], p["old_status"], p["new_status"])
        for name, p in published
        if name == "federation.node.status_changed"
    ]


# --- The deprecated engine ---------------------------------------------------------


def test_engine_warns_at_the_callers_line(bus: EventBus) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        FederatedEngineV2(bus)
    [warning] = caught
    assert warning.category is DeprecationWarning
    assert str(warning.message) == (
        "FederatedEngineV2 is deprecated and maintained only for bridge compatibility. "
        "Use FederationV3 (EventBus-based) for new code."
    )
    assert (warning.filename, warning.lineno) == (__file__, line)


def test_engine_leaves_new_to_be_patched(bus: EventBus) -> None:
    # The source, not vars(): a V2Guard that ran earlier in this process leaves
    # an inert __new__ on the class (the CPython 3.11 workaround in _v2).
    assert "def __new__" not in inspect.getsource(FederatedEngineV2)
    callers: list[str] = []

    def recording_new(cls: type[FederatedEngineV2], *args: Any, **kwargs: Any) -> Any:
        callers.append(inspect.stack()[1].filename)
        return object.__new__(cls)

    # Patched on a throwaway subclass: on CPython 3.11 a class whose __new__ was
    # ever assigned rejects constructor arguments even after the patch is undone.
    class Watched(FederatedEngineV2):
        pass

    Watched.__new__ = recording_new  # type: ignore[method-assign,assignment]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = Watched(bus)
    assert isinstance(engine, FederatedEngineV2)
    assert callers == [__file__]
    assert caught[0].filename == __file__


def test_engine_defaults_to_the_process_bus() -> None:
    events: list[str] = []

    def record(name: str, payload: Mapping[str, Any]) -> None:
        events.append(name)

    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        engine = FederatedEngineV2()
    with get_event_bus().connected_to(record, ["federation.node.status_changed"]):
        asyncio.run(engine.update_node_status("n1", "online"))
    assert events == ["federation.node.status_changed"]


@pytest.mark.parametrize("timeout", [0, -1.0, True, "5", None])
def test_engine_rejects_a_bad_delivery_timeout(bus: EventBus, timeout: Any) -> None:
    with (
        pytest.warns(DeprecationWarning, match=DEPRECATED),
        pytest.raises(FederationV2Error, match="positive"),
    ):
        FederatedEngineV2(bus, delivery_timeout=timeout)


def test_registered_nodes_start_unknown(engine: FederatedEngineV2) -> None:
    engine.register_node("a", Node())
    engine.register_node("b", Node())
    assert engine.nodes == ("a", "b")
    assert engine.node_statuses == {"a": "unknown", "b": "unknown"}


@pytest.mark.parametrize(
    ("node_id", "transport", "match"),
    [
        ("", Node(), "node id must be a non-empty str"),
        (None, Node(), "node id must be a non-empty str"),
        ("a", "not callable", "transport of node 'a' is not callable"),
        ("taken", Node(), "node 'taken' is already registered"),
    ],
)
def test_register_node_rejects_bad_input(
    engine: FederatedEngineV2, node_id: Any, transport: Any, match: str
) -> None:
    engine.register_node("taken", Node())
    with pytest.raises(InvalidNodeError, match=match):
        engine.register_node(node_id, transport)
    assert engine.nodes == ("taken",)


def test_update_node_status_publishes_the_change(
    engine: FederatedEngineV2, published: Recorded
) -> None:
    asyncio.run(engine.update_node_status("n1", "degraded"))
    assert engine.node_statuses == {"n1": "degraded"}
    [(name, payload)] = published
    assert name == "federation.node.status_changed"
    assert payload.keys() == {"node_id", "old_status", "new_status", "timestamp"}
    assert (payload["node_id"], payload["old_status"], payload["new_status"]) == (
        "n1",
        "unknown",
        "degraded",
    )
    assert re.fullmatch(r".+\+00:00", payload["timestamp"])


def test_update_node_status_changes_state_before_publishing(
    engine: FederatedEngineV2, bus: EventBus
) -> None:
    seen: list[str] = []
    bus.subscribe(
        "federation.node.status_changed", lambda n, p: seen.append(engine.node_statuses["n1"])
    )
    asyncio.run(engine.update_node_status("n1", "online"))
    assert seen == ["online"]


def test_an_unchanged_status_publishes_nothing(
    engine: FederatedEngineV2, published: Recorded
) -> None:
    engine.register_node("n1", Node())

    async def scenario() -> None:
        await engine.update_node_status("n1", "unknown")
        await engine.update_node_status("n1", "online")
        await engine.update_node_status("n1", "online")

    asyncio.run(scenario())
    assert status_changes(published) == [("n1", "unknown", "online")]


@pytest.mark.parametrize("status", ["up", "", "ONLINE", None, 1])
def test_update_node_status_rejects_an_invalid_status(
    engine: FederatedEngineV2, published: Recorded, status: Any
) -> None:
    engine.register_node("n1", Node())
    with pytest.raises(
        InvalidNodeStatusError, match="valid statuses: online, degraded, offline, unknown"
    ):
        asyncio.run(engine.update_node_status("n1", status))
    assert engine.node_statuses == {"n1": "unknown"}
    assert published == []


def test_update_node_status_rejects_an_invalid_node_id(
    engine: FederatedEngineV2, published: Recorded
) -> None:
    with pytest.raises(InvalidNodeError):
        asyncio.run(engine.update_node_status("  ", "online"))
    assert engine.node_statuses == {}
    assert published == []


def test_broadcast_delivers_a_v2_message_to_every_node(engine: FederatedEngineV2) -> None:
    nodes = [Node(), Node(), Node()]
    for index, node in enumerate(nodes):
        engine.register_node(f"n{index}", node)

    delivered = asyncio.run(engine.broadcast_to_v2_nodes("federation.round.started", {"r": 1}))

    assert delivered == 3
    for node in nodes:
        [message] = node.received
        assert message.keys() == {"protocol", "event", "payload", "timestamp"}
        assert (message["protocol"], message["event"]) == (
            "federation.v2",
            "federation.round.started",
        )
        assert message["payload"] == {"r": 1}


def test_each_node_gets_its_own_copy(engine: FederatedEngineV2) -> None:
    first, second = Node(), Node()
    engine.register_node("a", first)
    engine.register_node("b", second)
    payload = {"metrics": {"loss": 0.5}}
    asyncio.run(engine.broadcast_to_v2_nodes("federation.round.completed", payload))

    first.received[0]["payload"]["metrics"]["loss"] = 99
    assert second.received[0]["payload"] == {"metrics": {"loss": 0.5}}
    assert payload == {"metrics": {"loss": 0.5}}


def test_broadcast_with_no_nodes_delivers_nothing(engine: FederatedEngineV2) -> None:
    assert asyncio.run(engine.broadcast_to_v2_nodes("federation.round.started", {})) == 0


def test_a_failing_node_goes_offline_without_stopping_the_others(
    engine: FederatedEngineV2, published: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    before, after = Node(), Node()
    engine.register_node("before", before)
    engine.register_node("broken", Node(error=ConnectionResetError("peer gone")))
    engine.register_node("after", after)

    delivered = asyncio.run(engine.broadcast_to_v2_nodes("federation.round.started", {"r": 1}))

    assert delivered == 2
    assert len(before.received) == len(after.received) == 1
    assert engine.node_statuses["broken"] == "offline"
    assert status_changes(published) == [("broken", "unknown", "offline")]
    [failure] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "broadcast_to_v2_nodes: node broken failed" in failure.getMessage()
    assert failure.exc_info is not None


def test_a_node_that_stays_offline_is_reported_once(
    engine: FederatedEngineV2, published: Recorded
) -> None:
    engine.register_node("broken", Node(error=RuntimeError("down")))

    async def scenario() -> None:
        await engine.broadcast_to_v2_nodes("federation.round.started", {})
        await engine.broadcast_to_v2_nodes("federation.round.completed", {})

    asyncio.run(scenario())
    assert status_changes(published) == [("broken", "unknown", "offline")]


def test_a_node_that_does_not_answer_in_time_goes_offline(
    bus: EventBus, published: Recorded
) -> None:
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        engine = FederatedEngineV2(bus, delivery_timeout=0.001)
    live = Node()
    engine.register_node("slow", hang)
    engine.register_node("live", live)

    assert asyncio.run(engine.broadcast_to_v2_nodes("federation.round.started", {})) == 1
    assert len(live.received) == 1
    assert status_changes(published) == [("slow", "unknown", "offline")]


@pytest.mark.parametrize("payload", [["not", "a", "mapping"], {"s": {1, 2}}, {1: "x"}])
def test_broadcast_rejects_a_bad_payload_before_sending(
    engine: FederatedEngineV2, payload: Any
) -> None:
    node = Node()
    engine.register_node("a", node)
    with pytest.raises(InvalidPayloadError):
        asyncio.run(engine.broadcast_to_v2_nodes("federation.round.started", payload))
    assert node.received == []


@pytest.mark.parametrize("event", ["", None, 3])
def test_broadcast_rejects_a_bad_event_name(engine: FederatedEngineV2, event: Any) -> None:
    with pytest.raises(FederationV2Error, match="event must be a non-empty str"):
        asyncio.run(engine.broadcast_to_v2_nodes(event, {}))


def test_engine_errors_are_typed() -> None:
    for error in (FederationV2Error, InvalidNodeError, InvalidNodeStatusError):
        assert issubclass(error, P1Error)
        assert issubclass(error, ValueError)


# --- The bridge --------------------------------------------------------------------


def test_bridge_constructs_the_engine_and_the_warning_names_the_bridge(bus: EventBus) -> None:
    with pytest.warns(DeprecationWarning, match="maintained only for bridge compatibility") as rec:
        bridge = FederationV2EventBridge(bus)
    assert isinstance(bridge.engine, FederatedEngineV2)
    assert [w.filename for w in rec] == [federation_v2_event_bridge.__file__]


def test_bridge_uses_the_engine_it_is_given(engine: FederatedEngineV2, bus: EventBus) -> None:
    assert FederationV2EventBridge(bus, engine).engine is engine


def test_bridge_relays_v3_round_events_to_v2_nodes(
    engine: FederatedEngineV2, bus: EventBus
) -> None:
    node = Node()
    engine.register_node("n1", node)
    bridge = FederationV2EventBridge(bus, engine)
    bridge.start()

    async def scenario() -> None:
        await bus.publish("federation.round.started", {"round_id": "r1"})
        await bus.publish("model.promoted", {"model_id": "m"})
        await bus.publish("federation.round.completed", {"round_id": "r1"})

    asyncio.run(scenario())
    assert [(m["event"], m["payload"]) for m in node.received] == [
        ("federation.round.started", {"round_id": "r1"}),
        ("federation.round.completed", {"round_id": "r1"}),
    ]


def test_bridge_stops_relaying_after_stop(engine: FederatedEngineV2, bus: EventBus) -> None:
    node = Node()
    engine.register_node("n1", node)
    bridge = FederationV2EventBridge(bus, engine)
    bridge.start()
    bridge.start()
    assert bridge.running
    assert bus.subscribers("federation.round.started") == 1
    bridge.stop()
    bridge.stop()
    assert not bridge.running
    assert bus.subscribers("federation.round.started") == 0
    assert bus.subscribers("federation.round.completed") == 0

    asyncio.run(bus.publish("federation.round.started", {"round_id": "r1"}))
    assert node.received == []


def test_bridge_logs_what_the_runbook_greps_for(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reference_impl.federation")
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        bridge = FederationV2EventBridge(bus)
    bridge.engine.register_node("n1", Node())
    bridge.engine.register_node("n2", Node(error=OSError("down")))
    bridge.start()
    asyncio.run(FederationV3(bus).start_round("r1", ["n1", "n2"]))
    bridge.stop()

    # grep "federation_v2_event_bridge.*broadcast" and grep "broadcast_to_v2_nodes"
    assert any(re.search("federation_v2_event_bridge.*broadcast", m) for m in caplog.messages)
    assert any("broadcast_to_v2_nodes" in m for m in caplog.messages)
    # grep "FederatedEngineV2" | grep -v "bridge" must find nothing.
    assert [m for m in caplog.messages if "FederatedEngineV2" in m and "bridge" not in m] == []


def test_v3_rounds_reach_v2_nodes_and_a_broken_node_does_not_break_v3(
    bus: EventBus, published: Recorded
) -> None:
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        bridge = FederationV2EventBridge(bus)
    healthy = Node()
    bridge.engine.register_node("healthy", healthy)
    bridge.engine.register_node("broken", Node(error=RuntimeError("boom")))
    bridge.start()
    federation = FederationV3(bus)

    async def scenario() -> None:
        await federation.start_round("r1", ["healthy", "broken"])
        await federation.complete_round("r1", {"loss": 0.1})

    asyncio.run(scenario())
    assert [m["event"] for m in healthy.received] == [
        "federation.round.started",
        "federation.round.completed",
    ]
    assert [name for name, _ in published] == [
        "federation.round.started",
        "federation.node.status_changed",
        "federation.round.completed",
    ]
    assert bridge.engine.node_statuses == {"healthy": "unknown", "broken": "offline"}


def test_relay_probe_returns_what_each_v2_node_received(bus: EventBus) -> None:
    probe = TARGET.v2.relay_probe
    assert probe is not None
    calls: list[object] = []

    async def node_down(message: Mapping[str, Any]) -> None:
        calls.append(message)
        raise ConnectionError("v2 node down")

    async def relay() -> Mapping[str, Sequence[Mapping[str, Any]]]:
        return await probe(bus, {"round_id": "r9", "metrics": {"acc": 0.9}}, node_down)

    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        received = asyncio.run(relay())
    payload = {"round_id": "r9", "metrics": {"acc": 0.9}}
    # The node that is down was tried and kept the event from no one.
    assert len(calls) == 1
    assert received == {"probe-node-1": [payload], "probe-node-2": [payload]}
    assert bus.subscribers("federation.round.completed") == 0


# --- Federation v3 -----------------------------------------------------------------


def test_start_round_publishes_and_tracks_the_round(bus: EventBus, published: Recorded) -> None:
    federation = FederationV3(bus)
    asyncio.run(federation.start_round("r1", ("a", "b")))
    assert federation.active_rounds == {"r1": ("a", "b")}
    [(name, payload)] = published
    assert name == "federation.round.started"
    assert payload.keys() == {"round_id", "participants", "timestamp"}
    assert (payload["round_id"], payload["participants"]) == ("r1", ["a", "b"])


def test_complete_round_publishes_metrics_and_ends_the_round(
    bus: EventBus, published: Recorded
) -> None:
    federation = FederationV3(bus)

    async def scenario() -> None:
        await federation.start_round("r1", ["a"])
        await federation.complete_round("r1", {"loss": 0.25, "samples": 1000})

    asyncio.run(scenario())
    assert federation.active_rounds == {}
    name, payload = published[-1]
    assert name == "federation.round.completed"
    assert payload.keys() == {"round_id", "participants", "metrics", "timestamp"}
    assert payload["metrics"] == {"loss": 0.25, "samples": 1000}
    assert payload["participants"] == ["a"]


@pytest.mark.parametrize(
    ("round_id", "participants", "match"),
    [
        ("", ["a"], "round_id must be a non-empty str"),
        (7, ["a"], "round_id must be a non-empty str"),
        ("r2", [], "needs at least one participant"),
        ("r2", ["a", "a"], "lists a participant twice"),
        ("r2", "ab", "participants must be a collection of node ids"),
        ("r2", None, "participants must be a collection of node ids"),
        ("r2", ["a", ""], "participant must be a non-empty str"),
        ("r1", ["a"], "round 'r1' is already running"),
    ],
)
def test_start_round_rejects_bad_input(
    bus: EventBus, round_id: Any, participants: Any, match: str
) -> None:
    federation = FederationV3(bus)
    asyncio.run(federation.start_round("r1", ["x"]))
    events: Recorded = []
    bus.subscribe("federation.round.started", lambda n, p: events.append((n, dict(p))))
    with pytest.raises(FederationRoundError, match=match):
        asyncio.run(federation.start_round(round_id, participants))
    assert federation.active_rounds == {"r1": ("x",)}
    assert events == []


@pytest.mark.parametrize(
    ("round_id", "metrics", "match"),
    [
        ("r9", {}, "round 'r9' is not running"),
        ("r1", [("loss", 1.0)], "metrics must be a mapping"),
        ("r1", {"loss": float("nan")}, "metric 'loss' of round 'r1' must be a finite number"),
        ("r1", {"ok": True}, "metric 'ok'"),
        ("r1", {"loss": "0.1"}, "metric 'loss'"),
        ("r1", {1: 0.1}, "metric 1"),
    ],
)
def test_complete_round_rejects_bad_input(
    bus: EventBus, round_id: str, metrics: Any, match: str
) -> None:
    federation = FederationV3(bus)
    asyncio.run(federation.start_round("r1", ["x"]))
    events: Recorded = []
    bus.subscribe("federation.round.completed", lambda n, p: events.append((n, dict(p))))
    with pytest.raises(FederationRoundError, match=match):
        asyncio.run(federation.complete_round(round_id, metrics))
    assert federation.active_rounds == {"r1": ("x",)}
    assert events == []


# --- P1-3: what is gone, who may use v2, what the docs say -------------------------


def test_the_four_legacy_v2_files_are_gone() -> None:
    federation = PACKAGE / "federation"
    assert federation.is_dir()
    for name in REMOVED:
        assert not (federation / name).exists(), name
        assert list(PACKAGE.rglob(name)) == [], name
    assert set(TARGET.v2.removed_paths) == {federation / name for name in REMOVED}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def v2_uses(source: str, module: str, is_package: bool = False) -> list[str]:
    """What in ``source`` imports the v2 engine module or constructs the engine."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0] if node.args else None
            if called in {"import_module", "__import__"} and isinstance(first, ast.Constant):
                names = [str(first.value)]
            elif called == "FederatedEngineV2":
                names = ["FederatedEngineV2()"]
        found += [n for n in names if ENGINE_MODULE in n or n == "FederatedEngineV2()"]
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import reference_impl.federation.federated_engine_v2",
        "from reference_impl.federation import federated_engine_v2",
        "from .federated_engine_v2 import FederatedEngineV2",
        "from . import federated_engine_v2 as legacy",
        "importlib.import_module('reference_impl.federation.federated_engine_v2')",
        "__import__('reference_impl.federation.federated_engine_v2')",
        "engine = legacy.FederatedEngineV2()",
    ],
)
def test_the_v2_scan_finds_every_form_of_use(source: str) -> None:
    assert v2_uses(source, "reference_impl.federation.somewhere") != []


def test_only_the_bridge_imports_or_constructs_the_v2_engine() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module in {BRIDGE_MODULE, ENGINE_MODULE}:
            continue
        uses = v2_uses(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
        if uses:
            offenders[module] = uses
    assert offenders == {}
    bridge_source = Path(federation_v2_event_bridge.__file__).read_text(encoding="utf-8")
    assert v2_uses(bridge_source, BRIDGE_MODULE) != []


def test_the_target_names_the_v2_modules_that_exist() -> None:
    assert TARGET.v2.source_roots == (PACKAGE,)
    assert TARGET.v2.v2_modules == (ENGINE_MODULE,)
    assert TARGET.v2.bridge_modules == (BRIDGE_MODULE,)
    module_name, _, class_name = TARGET.v2.engine_class.partition(":")
    assert getattr(importlib.import_module(module_name), class_name) is FederatedEngineV2


def _plain(markdown: str) -> str:
    return re.sub(r"[*_`]", "", markdown).casefold()


@pytest.mark.parametrize("doc", TARGET.v2.docs, ids=lambda p: p.name)
def test_each_architecture_doc_carries_the_deprecation_notice(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for line in NOTICE:
        assert line in text, line
    for phrase in TARGET.v2.doc_notice:
        assert _plain(phrase) in _plain(text)


def test_the_target_lists_the_three_architecture_docs() -> None:
    assert {doc.name for doc in TARGET.v2.docs} == {
        "AI_TRADING_ARCHITECTURE.md",
        "ARCHITECTURE_V2_INTEGRATION_COMPLETE.md",
        "AI_OS_INTEGRATION_SUMMARY.md",
    }
    assert all(doc.parent == PACKAGE / "docs" for doc in TARGET.v2.docs)
