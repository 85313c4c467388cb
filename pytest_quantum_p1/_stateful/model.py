"""The model the machine judges reads against: writes, their invalidations' fates, what was read.

Every value written is ``{"v": n, ...}`` with a global counter ``n``
(:data:`VERSION_KEY`), so "older" is well defined. For each write the model keeps
what became of its invalidation on the way to each instance (:class:`Fate`:
pending, delivered, dropped, lost with a link); for each instance, a mirror of
the messages held for it (:class:`Held`), the newest version it returned, and
the names it must read from storage after a link loss. :meth:`Model.judge`
applies the checks listed in :mod:`pytest_quantum_p1._stateful.machine` to one
read and returns a :class:`Verdict`; the machine turns a violation into an
:class:`~pytest_quantum_p1._stateful.machine.InvalidationError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from pytest_quantum_p1 import _messages

if TYPE_CHECKING:
    from pytest_quantum_p1._stateful.instruments import MachinePubSub, MachineRedis, WireInstrument
    from pytest_quantum_p1._target import PolicyStore

__all__ = [
    "VERSION_KEY",
    "ErrorKind",
    "Fate",
    "Held",
    "Instance",
    "Model",
    "ReadStart",
    "Verdict",
    "Violation",
    "Write",
]

#: The key every written policy carries: a global write counter.
VERSION_KEY: Final = "v"

#: Which property a store broke (``unsettled``: it did not become idle again;
#: ``hung``: one of its calls did not return).
ErrorKind = Literal[
    "stale",
    "monotonic",
    "ttl",
    "link-loss",
    "impossible",
    "read-your-writes",
    "unsettled",
    "hung",
]


@dataclass
class Fate:
    """What became of one write's invalidation(s) on the way to one instance."""

    pending: int = 0
    delivered: int = 0
    dropped: int = 0
    lost: int = 0
    delivered_at: list[int] = field(default_factory=list)
    #: Delivered while the update was still running (before ``update_policy``
    #: returned): it may precede the storage write, so it proves nothing about
    #: the new value and does not count as :attr:`delivered`.
    early: int = 0

    def describe(self) -> str:
        """This fate in words, for a failure's evidence."""
        if self.delivered:
            steps = ", ".join(str(s) for s in self.delivered_at)
            return _messages.MACHINE_FATE_DELIVERED.format(steps=steps)
        parts = []
        if self.early:
            parts.append(_messages.MACHINE_FATE_EARLY.format(count=self.early))
        if self.pending:
            parts.append(_messages.MACHINE_FATE_PENDING.format(count=self.pending))
        if self.dropped:
            parts.append(_messages.MACHINE_FATE_DROPPED.format(count=self.dropped))
        if self.lost:
            parts.append(_messages.MACHINE_FATE_LOST.format(count=self.lost))
        return ", ".join(parts) or _messages.MACHINE_FATE_NONE

    @property
    def excuses(self) -> bool:
        """Whether this invalidation's absence excuses an older cached value."""
        return not self.delivered and bool(self.pending or self.dropped)


@dataclass(eq=False)
class Write:
    """One update, as the machine made it."""

    version: int
    name: str
    #: When it was written, on the virtual clock.
    at: float
    #: The step that wrote it (index into the machine's trace).
    step: int
    writer: int
    fates: dict[int, Fate] = field(default_factory=dict)
    #: Whether its ``update_policy`` returned (see :meth:`Model.commit`).
    committed: bool = False

    def fate(self, instance: int) -> Fate:
        """What became of this write's invalidation on the way to ``instance``."""
        return self.fates.setdefault(instance, Fate())


@dataclass(eq=False)
class Held:
    """A held invalidation, mirrored: which write it belongs to (if known)."""

    write: Write | None
    #: On the wire path, the proxy's own record of the push (its identity is the mirror's key).
    token: object = None

    def fate(self, instance: int) -> Fate:
        """Its write's fate at ``instance``; a throwaway one for a message no write sent."""
        return self.write.fate(instance) if self.write is not None else Fate()


@dataclass(eq=False)
class Instance:
    """One store instance, its client, and what the model knows of it."""

    index: int
    #: The client path's observed client, or the wire path's proxy.
    observed: MachineRedis | WireInstrument
    store: PolicyStore
    pubsub: MachinePubSub | None = None
    #: Mirror of the real (non-marker) messages held for ``pubsub``, oldest first.
    queue: list[Held] = field(default_factory=list)
    #: Highest version each name was returned as.
    seen: dict[str, int] = field(default_factory=dict)
    #: Names whose next read must go to storage, and why.
    must_fetch: dict[str, str] = field(default_factory=dict)
    #: How its listener tasks ended, in words.
    deaths: list[str] = field(default_factory=list)
    #: ``id()`` of the listener tasks already in :attr:`deaths`.
    reported: set[int] = field(default_factory=set)

    def lose_queue(self) -> None:
        """Everything held for the subscription is gone with it."""
        for held in self.queue:
            if held.write is not None:
                fate = held.write.fate(self.index)
                fate.pending -= 1
                fate.lost += 1
        self.queue.clear()


@dataclass(frozen=True)
class ReadStart:
    """What the model knew when a read began."""

    name: str
    #: The latest version written.
    floor: int
    #: The highest version the instance had returned.
    seen: int
    storage_reads: int
    #: The latest version this instance itself had written (its update had returned).
    own: int = 0


@dataclass(frozen=True)
class Violation:
    """A property one read broke: the message head, and what the evidence is about."""

    kind: ErrorKind
    head: str
    instance: Instance | None = None
    name: str | None = None
    version: int | None = None
    #: Whether the value came from storage; ``None`` when that is beside the point.
    fetched: bool | None = None


@dataclass(frozen=True)
class Verdict:
    """The model's word on one read."""

    violation: Violation | None = None
    #: Write -> read age (clock seconds) of a value that was stale, but excused.
    stale_age: float | None = None


class Model:
    """The writes of one example, and the checks every read is judged by."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        #: The longest a storage read was held in flight (clock seconds): it extends the TTL.
        self.max_in_flight = 0.0
        self._version = 0
        self._writes: dict[str, list[Write]] = {}
        self._bodies: dict[int, dict[str, Any]] = {}
        #: Per name, the write whose ``update_policy`` is running: either value may be read.
        self._in_flight: dict[str, Write] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Every name written, in the order first written."""
        return tuple(self._writes)

    def next_body(self, policy: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """The next version, and ``policy`` carrying it: what the store is told to write."""
        self._version += 1
        version = self._version
        body = {**{k: v for k, v in policy.items() if k != VERSION_KEY}, VERSION_KEY: version}
        self._bodies[version] = body
        return version, body

    def begin(self, version: int, name: str, *, at: float, step: int, writer: int) -> Write:
        """``update_policy`` of ``version`` started: reads may return it, or what came before."""
        write = Write(version, name, at, step, writer)
        self._in_flight[name] = write
        return write

    def commit(self, write: Write) -> None:
        """``update_policy`` returned: from now on ``write`` is the one to read."""
        if self._in_flight.get(write.name) is write:
            del self._in_flight[write.name]
        write.committed = True
        self._writes.setdefault(write.name, []).append(write)

    def record(self, version: int, name: str, *, at: float, step: int, writer: int) -> Write:
        """The store wrote ``version`` of ``name`` (:meth:`begin` and :meth:`commit` at once)."""
        write = self.begin(version, name, at=at, step=step, writer=writer)
        self.commit(write)
        return write

    def start_read(self, inst: Instance, name: str) -> ReadStart:
        """Note what a read of ``name`` on ``inst`` may return, before it starts."""
        history = self._writes[name]
        return ReadStart(
            name=name,
            floor=history[-1].version,
            seen=inst.seen.get(name, 0),
            storage_reads=inst.observed.storage_reads,
            own=max((w.version for w in history if w.writer == inst.index), default=0),
        )

    def judge(
        self, inst: Instance, start: ReadStart, value: Mapping[str, Any], now: float
    ) -> Verdict:
        """Check one read's ``value`` (returned at ``now``) against the model."""
        name = start.name
        history = self._writes[name]
        version = value.get(VERSION_KEY) if isinstance(value, Mapping) else None
        written = self._bodies.get(version) if isinstance(version, int) else None
        in_flight = self._in_flight.get(name)
        known = any(w.version == version for w in history) or (
            in_flight is not None and in_flight.version == version
        )
        if written is None or not known:
            return Verdict(Violation("impossible", self._impossible(inst, name, value)))
        assert isinstance(version, int)
        if dict(value) != written:
            head = self._impossible(inst, name, value) + _messages.MACHINE_WRITTEN_AS.format(
                version=version, written=written
            )
            return Verdict(Violation("impossible", head))
        if version < start.seen:
            head = _messages.MACHINE_NOT_MONOTONIC.format(
                instance=inst.index, name=name, version=version, seen=start.seen
            )
            return Verdict(Violation("monotonic", head, inst, name, version))
        fetched = inst.observed.storage_reads > start.storage_reads
        event = inst.must_fetch.get(name)
        if event is not None:
            if not fetched:
                head = _messages.MACHINE_CACHED_ACROSS_LINK_LOSS.format(
                    instance=inst.index, name=name, version=version, event=event
                )
                return Verdict(Violation("link-loss", head, inst, name, version))
            del inst.must_fetch[name]
        inst.seen[name] = max(inst.seen.get(name, 0), version)
        if version < start.own:
            # Its own update had returned: no pending invalidation excuses the old value.
            head = _messages.MACHINE_NOT_READ_YOUR_WRITES.format(
                instance=inst.index, name=name, version=version, own=start.own
            )
            return Verdict(Violation("read-your-writes", head, inst, name, version, fetched))
        if version >= start.floor:
            return Verdict()
        # Older than storage held when the read started: only a missing
        # invalidation can excuse it, and only within the TTL.
        newer = self.newer(name, version)
        age = now - newer[0].at
        if not all(w.fate(inst.index).excuses for w in newer):
            head = _messages.MACHINE_STALE_READ.format(
                instance=inst.index, name=name, version=version, newer=newer[0].version, age=age
            )
            return Verdict(Violation("stale", head, inst, name, version, fetched))
        if age > self.ttl + self.max_in_flight:
            head = _messages.MACHINE_PAST_TTL.format(
                instance=inst.index,
                name=name,
                version=version,
                newer=newer[0].version,
                age=age,
                ttl=self.ttl,
            )
            if self.max_in_flight:
                head += _messages.MACHINE_PAST_TTL_IN_FLIGHT.format(seconds=self.max_in_flight)
            return Verdict(Violation("ttl", head, inst, name, version, fetched))
        return Verdict(stale_age=age)

    @staticmethod
    def _impossible(inst: Instance, name: str, value: object) -> str:
        return _messages.MACHINE_IMPOSSIBLE_VALUE.format(
            instance=inst.index, name=name, value=value
        )

    def newer(self, name: str, version: int) -> list[Write]:
        """The writes of ``name`` after ``version``, oldest first."""
        return [w for w in self._writes[name] if w.version > version]

    def explain(self, violation: Violation) -> list[str]:
        """The violation's head, then its evidence: where the value came from, newer writes."""
        lines = [violation.head]
        inst, name, version = violation.instance, violation.name, violation.version
        if inst is None or name is None or version is None:
            return lines
        if violation.fetched is not None:
            source = (
                _messages.MACHINE_FROM_STORAGE
                if violation.fetched
                else _messages.MACHINE_FROM_CACHE
            )
            lines.append(_messages.MACHINE_VALUE_FROM.format(source=source))
        newer = self.newer(name, version)
        if newer:
            lines.append(_messages.MACHINE_NEWER_WRITES.format(name=name))
            lines.extend(
                _messages.MACHINE_NEWER_WRITE.format(
                    version=w.version,
                    writer=w.writer,
                    step=w.step,
                    at=w.at,
                    fate=w.fate(inst.index).describe(),
                )
                for w in newer
            )
        lines.extend(f"  {death}" for death in inst.deaths)
        return lines
