"""The acceptance run (``--p1``): one test item per success criterion of the seed.

Each criterion is a plain function whose arguments are the plugin's own
fixtures (``p1_target``, ``p1_redis_factory``, ``virtual_clock``,
``policy_cluster`` ...), so the acceptance run and a team's own tests reach the
backend the same way. A criterion fills its :class:`CriterionRecord` (figures,
the key figure in words, chart data) and fails with ``pytest.fail(message,
pytrace=False)``: the message is what a user reads, in the order *what was
found*, *the evidence*, *how to fix it*.

The plugin module turns :data:`CRITERIA` into items
(:func:`collect_criteria`), carries each record on its test report (so it
survives pytest-xdist) and renders the checklist and reports from them.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import random
import secrets
import time
import warnings
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest

from pytest_quantum_p1._report import CriterionRecord

if TYPE_CHECKING:
    from pytest_quantum_p1._clock import VirtualClock
    from pytest_quantum_p1._latency import LatencyStats
    from pytest_quantum_p1._options import P1Settings, Workload
    from pytest_quantum_p1._target import Bus, P1Target, RequiredEvent

T = TypeVar("T")

__all__ = [
    "AcceptanceHooks",
    "Criterion",
    "CriterionItem",
    "collect_criteria",
    "criteria_for",
]

READ_MORE = "See README.md#the-acceptance-run for what each criterion proves."

#: Cold reads must be at least this many times slower than cached ones for the
#: cache to "pay off"; the seed's own numbers (2-3 s vs < 1 ms) are >1000x.
MIN_SPEEDUP = 10.0
#: Hit rate the seed requires after five minutes of operation.
MIN_HIT_RATE = 0.90

# Ids the acceptance run gives the seed's four events; other targets' events
# get ``P1-1.event:<name>``.
EVENT_IDS: Mapping[str, str] = {
    "ai.hfos.mode_changed": "P1-1.hfos-mode",
    "safety.governor.level_changed": "P1-1.safety-level",
    "model.shadow_test.completed": "P1-1.shadow-test",
    "federation.node.status_changed": "P1-1.node-status",
}


@dataclass(frozen=True)
class Criterion:
    """One success criterion: its id, task, title and the check function."""

    id: str
    task: str
    title: str
    check: Callable[..., None]


class CriterionItem(pytest.Function):
    """A test item running one criterion; carries its :class:`CriterionRecord`."""

    record: CriterionRecord

    def reportinfo(self) -> tuple[str, int | None, str]:
        # Criteria live in no test file; name them by id, not by module path.
        return ("quantum-p1", None, f"{self.name}: {self.record.title}")


def _fail(*lines: str) -> NoReturn:
    __tracebackhide__ = True
    # from None: raised inside an except block, the message must not trail a
    # "During handling of the above exception" chain.
    raise pytest.fail.Exception("\n".join(line for line in lines if line), pytrace=False) from None


def _bullets(items: Sequence[object], limit: int = 12) -> list[str]:
    shown = [f"  - {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"  - ... and {len(items) - limit} more")
    return shown


@contextmanager
def _quiet_v2_warnings() -> Iterator[list[warnings.WarningMessage]]:
    # Actions legitimately build the deprecated engine through the bridge; its
    # DeprecationWarning is P1-3's business, not a failure of a P1-1 check
    # (and would be an error under -W error).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _run(awaitable: Awaitable[T]) -> T:
    """Run a target's awaitable (typed ``Awaitable``, not only coroutines) to completion."""

    async def wait() -> T:
        return await awaitable

    return asyncio.run(wait())


def _probe_name(prefix: str) -> str:
    return f"p1-{prefix}-{secrets.token_hex(4)}"


# --- P1-1 events ----------------------------------------------------------------


def check_catalogue(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Every required event is in the bus catalogue."""
    catalogue = list(p1_target.bus().catalogue)
    required = [event.name for event in p1_target.required_events]
    missing = [name for name in required if name not in catalogue]
    _p1_criterion.figures = {"required": len(required), "missing": len(missing)}
    _p1_criterion.summary = (
        f"{len(required) - len(missing)}/{len(required)} events in the catalogue"
    )
    if missing:
        _fail(
            f"{len(missing)} required event(s) missing from the bus catalogue:",
            *_bullets([_with_closest(name, catalogue) for name in missing]),
            "Add them to the bus's event map (seed: backend/core/event_bus.py).",
            READ_MORE,
        )


def _with_closest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
    return f"{name!r} (closest: {', '.join(close)})" if close else repr(name)


def _run_action(bus: Bus, event: RequiredEvent) -> tuple[Any, Mapping[str, Any]]:
    from pytest_quantum_p1._events import EventRecorder

    recorder = EventRecorder(bus)
    with recorder, _quiet_v2_warnings():
        expected = _run(event.action(bus))
    return recorder, expected


def _check_timestamp(value: object) -> str | None:
    """Why ``value`` is not an ISO-8601 UTC timestamp, or ``None``."""
    if not isinstance(value, str):
        return f"timestamp is a {type(value).__name__}, not an ISO-8601 string"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return f"timestamp {value!r} is not ISO-8601"
    if parsed.utcoffset() is None:
        return f"timestamp {value!r} has no UTC offset (naive datetime; use datetime.now(timezone.utc))"
    if parsed.utcoffset() != timedelta(0):
        return f"timestamp {value!r} is not UTC"
    return None


def _event_check(event: RequiredEvent) -> Callable[..., None]:
    def check(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
        __tracebackhide__ = True
        bus = p1_target.bus()
        if event.name not in bus.catalogue:
            _p1_criterion.summary = "not in the bus catalogue"
            _fail(
                f"{event.name!r} is not in the bus catalogue, so its publication cannot be "
                "recorded (see P1-1.catalogue).",
                READ_MORE,
            )
        recorder, expected = _run_action(bus, event)
        published = recorder.find(event.name)
        _p1_criterion.figures = {"published": len(published)}
        try:
            match = recorder.assert_published(event.name, **dict(expected))
        except AssertionError as exc:
            _p1_criterion.summary = f"not published as expected ({len(published)} publish(es))"
            _fail(
                f"the real action behind {event.name!r} did not publish it as expected.",
                str(exc),
                "Publish the values of the change that happened, as the target's action "
                "returns them.",
                READ_MORE,
            )
        problems = [
            f"field {field!r} is missing" for field in event.fields if field not in match.payload
        ]
        if len(published) > 1:
            problems.append(f"one action published it {len(published)} times (once expected)")
        if event.timestamp_field is not None and event.timestamp_field in match.payload:
            why = _check_timestamp(match.payload[event.timestamp_field])
            if why:
                problems.append(why)
        _p1_criterion.summary = f"published once, fields {', '.join(event.fields)}" + (
            " (UTC)" if event.timestamp_field else ""
        )
        if problems:
            _p1_criterion.summary = (
                f"published {len(published)} time(s), {len(problems)} problem(s)"
            )
            _fail(
                f"{event.name!r} was published, but not as required:",
                *_bullets(problems),
                f"  payload: {dict(match.payload)!r}",
                f"Required fields: {', '.join(event.fields)}.",
                "Publish the event once per action, with every required field and an aware "
                "UTC timestamp.",
                READ_MORE,
            )

    check.__doc__ = f"The real action publishes {event.name!r} with its payload."
    return check


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _capture_logger(name: str) -> Iterator[_Records]:
    logger = logging.getLogger(name)
    handler = _Records()
    saved = (logger.level, logger.disabled)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.disabled = saved[1]


def check_logged(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Each required event is logged as one structured record per publish."""
    problems: list[str] = []
    logged = 0
    for event in p1_target.required_events:
        bus = p1_target.bus()
        if event.name not in bus.catalogue:
            problems.append(
                f"{event.name}: not in the bus catalogue, so it cannot be recorded "
                "(see P1-1.catalogue)"
            )
            continue
        with _capture_logger(p1_target.monitor_logger) as handler:
            recorder, _ = _run_action(bus, event)
        published = recorder.find(event.name)
        records = [r for r in handler.records if getattr(r, "event", None) == event.name]
        if not published:
            problems.append(f"{event.name}: the action published nothing to log")
        elif len(records) != len(published):
            problems.append(
                f"{event.name}: published {len(published)} time(s), logged {len(records)} time(s) "
                f"on logger {p1_target.monitor_logger!r}"
            )
        elif any(
            getattr(r, "payload", None) != e.payload
            for r, e in zip(records, published, strict=True)
        ):
            problems.append(
                f"{event.name}: the log record's payload differs from the published one"
            )
        else:
            logged += 1
    _p1_criterion.figures = {"events_logged": logged}
    _p1_criterion.summary = (
        f"{logged}/{len(p1_target.required_events)} events logged for monitoring"
    )
    if problems:
        _fail(
            "some required events are not logged for monitoring:",
            *_bullets(problems),
            f"Log one record per publish on {p1_target.monitor_logger!r} carrying the name and "
            "payload, e.g. logger.info('event %s', name, extra={'event': name, 'payload': payload}).",
            READ_MORE,
        )


# --- P1-2 cache -----------------------------------------------------------------


async def _single_store(
    p1_target: P1Target, make_client: Callable[[], Any], clock: VirtualClock
) -> tuple[Any, Any]:
    from pytest_quantum_p1._observed import ObservedRedis

    observed = ObservedRedis(make_client(), label="instance 0")
    store = p1_target.store_factory(observed, clock)  # type: ignore[arg-type]
    await store.initialize()
    return store, observed


async def _settled_update(store: Any, observed: Any, name: str, policy: Mapping[str, Any]) -> None:
    """Update, then wait until the store has processed its own invalidation.

    It comes back over pub/sub after ``update_policy`` returns; a warm read
    racing it would rightly miss and be counted as a read that left the cache.
    """
    await store.update_policy(name, policy)
    await observed.wait_processed_async(name, timeout=5.0)


def check_cached_read(
    p1_target: P1Target,
    p1_redis_factory: Callable[[], Any],
    virtual_clock: VirtualClock,
    p1_settings: P1Settings,
    _p1_criterion: CriterionRecord,
) -> None:
    """Warm reads stay under the latency budget (seed: cached reads < 1 ms)."""
    from pytest_quantum_p1._latency import measure_latency_async
    from pytest_quantum_p1._units import format_duration

    name = _probe_name("cached")
    budget = p1_settings.latency_budget_ns

    async def scenario() -> tuple[Any, int]:
        store, observed = await _single_store(p1_target, p1_redis_factory, virtual_clock)
        try:
            await _settled_update(store, observed, name, {"probe": name, "limits": {"max": 10}})
            await store.get_policy(name)
            before = observed.storage_reads
            # A short probe first: a hit path far over budget fails in
            # milliseconds instead of running 20,000 slow reads.
            stats = await measure_latency_async(
                lambda: store.get_policy(name), warmup=20, calls=200, batch=10
            )
            if stats.p50_ns < budget:
                stats = await measure_latency_async(
                    lambda: store.get_policy(name), warmup=2_000, calls=20_000, batch=100
                )
            return stats, observed.storage_reads - before
        finally:
            await store.close()

    stats, storage_reads = asyncio.run(scenario())
    _p1_criterion.figures = {
        "p50_ns": stats.p50_ns,
        "p99_ns": stats.p99_ns,
        "p999_ns": stats.p999_ns,
        "reads": stats.calls,
    }
    _p1_criterion.series = {"warm_ns": list(stats.samples)}
    _p1_criterion.summary = (
        f"cached read p50 {format_duration(stats.p50_ns)}, p99 {format_duration(stats.p99_ns)} "
        f"(budget {format_duration(budget)})"
    )
    if storage_reads:
        _fail(
            f"warm reads were not served from the cache: {storage_reads} of {stats.calls} reads went to Redis.",
            "Cache the policy on a miss and serve it until it expires or is invalidated.",
            READ_MORE,
        )
    if stats.p99_ns >= budget:
        _fail(
            f"cached reads are too slow: p99 {format_duration(stats.p99_ns)} is over the "
            f"{format_duration(budget)} budget.",
            *_bullets(
                [
                    f"p50: {format_duration(stats.p50_ns)}",
                    f"p99: {format_duration(stats.p99_ns)}",
                    f"p99.9: {format_duration(stats.p999_ns)}",
                ]
            ),
            "Keep the hit path free of I/O, locks and copies; tune the budget with --p1-latency-budget.",
            READ_MORE,
        )


def check_cold_vs_warm(
    p1_target: P1Target,
    p1_redis_factory: Callable[[], Any],
    virtual_clock: VirtualClock,
    _p1_criterion: CriterionRecord,
) -> None:
    """A cached read is much cheaper than a read from the target's storage."""
    from pytest_quantum_p1._latency import measure_latency_async
    from pytest_quantum_p1._units import format_duration

    name = _probe_name("cold")
    ttl = p1_target.policy_ttl

    async def scenario() -> tuple[Any, Any, int]:
        store, observed = await _single_store(p1_target, p1_redis_factory, virtual_clock)
        try:
            await _settled_update(store, observed, name, {"probe": name})
            await store.get_policy(name)
            warm = await measure_latency_async(
                lambda: store.get_policy(name), warmup=500, calls=5_000, batch=50
            )

            before = observed.storage_reads
            cold_stats = await _cold_reads(store, name, virtual_clock, ttl)
            return warm, cold_stats, observed.storage_reads - before
        finally:
            await store.close()

    warm, cold, storage_reads = asyncio.run(scenario())
    speedup = cold.p50_ns / warm.p50_ns if warm.p50_ns else float("inf")
    _p1_criterion.figures = {
        "speedup": round(speedup, 1),
        "cold_p50_ns": cold.p50_ns,
        "warm_p50_ns": warm.p50_ns,
    }
    _p1_criterion.series = {"cold_ns": list(cold.samples)}
    _p1_criterion.summary = (
        f"cached {speedup:.0f}x faster than storage (cold p50 {format_duration(cold.p50_ns)}, "
        f"warm p50 {format_duration(warm.p50_ns)})"
    )
    expected_reads = cold.calls
    if storage_reads < expected_reads:
        _fail(
            f"reads after the TTL did not go to storage ({storage_reads} storage reads for "
            f"{expected_reads} expired reads), so no cold read could be measured.",
            "Entries must expire after the TTL (see P1-2.ttl).",
            READ_MORE,
        )
    if speedup < MIN_SPEEDUP:
        _fail(
            f"the cache does not pay off: a cached read is only {speedup:.1f}x faster than a read "
            f"from storage (at least {MIN_SPEEDUP:.0f}x expected).",
            *_bullets(
                [
                    f"cold p50: {format_duration(cold.p50_ns)}",
                    f"warm p50: {format_duration(warm.p50_ns)}",
                ]
            ),
            "Serve hits from memory without touching Redis or re-parsing JSON.",
            READ_MORE,
        )


async def _cold_reads(
    store: Any,
    name: str,
    clock: VirtualClock,
    ttl: float,
    *,
    calls: int = 300,
    seconds: float = 2.0,
) -> LatencyStats:
    """Time reads of an expired entry: up to ``calls``, at least 5, within ``seconds``.

    Bounded by time because storage may be seconds slow (the seed's is).
    """
    from pytest_quantum_p1._latency import LatencyStats

    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < calls and (len(samples) < 5 or time.perf_counter() < deadline):
        clock.advance(ttl * 2)  # expire the entry, outside the timed region
        started = time.perf_counter_ns()
        await store.get_policy(name)
        samples.append(time.perf_counter_ns() - started)
    return LatencyStats.from_samples(samples)


def _zipf_weights(n: int, skew: float) -> list[float]:
    return [1.0 / (rank**skew) for rank in range(1, n + 1)]


def check_hit_rate(
    p1_target: P1Target,
    policy_cluster: Callable[..., Any],
    virtual_clock: VirtualClock,
    _p1_workload: Workload,
    _p1_criterion: CriterionRecord,
) -> None:
    """Hit rate > 90 % after five simulated minutes of reads and updates."""
    w = _p1_workload
    cluster = policy_cluster(w.instances)
    rng = random.Random(w.seed)
    names = [_probe_name(f"hit{i}") for i in range(w.policies)]
    weights = _zipf_weights(w.policies, w.skew)
    version = 0
    for name in names:
        version += 1
        cluster.update(0, name, {"v": version})
    cluster.settle()
    start_reads = cluster.total_storage_reads
    total_s = w.minutes * 60
    steps = round(total_s / w.step_s)
    update_every = round(60 / w.updates_per_min / w.step_s) if w.updates_per_min else 0
    reads_per_step = w.reads_per_s * w.step_s
    reads = 0
    carry = 0.0
    t_s: list[float] = []
    rates: list[float] = []
    window: list[float] = []  # hit rate of each sample interval alone: shows update dips
    last = (0, 0)
    steps_per_sample = max(1, round(10 / w.step_s))

    async def read_burst(count: int) -> None:
        for _ in range(count):
            name = rng.choices(names, weights)[0]
            await cluster.store(rng.randrange(w.instances)).get_policy(name)

    for step in range(1, steps + 1):
        virtual_clock.advance(w.step_s)
        if update_every and step % update_every == 0:
            version += 1
            cluster.update(
                rng.randrange(w.instances), rng.choices(names, weights)[0], {"v": version}
            )
            cluster.settle()
        carry += reads_per_step
        count = int(carry)
        carry -= count
        cluster.portal.call(read_burst, count)
        reads += count
        if step % steps_per_sample == 0:
            misses = cluster.total_storage_reads - start_reads
            t_s.append(step * w.step_s)
            rates.append(1 - misses / reads if reads else 0.0)
            window.append(1 - (misses - last[1]) / (reads - last[0]) if reads > last[0] else 0.0)
            last = (reads, misses)
    storage_reads = cluster.total_storage_reads - start_reads
    hit_rate = 1 - storage_reads / reads if reads else 0.0
    _p1_criterion.figures = {
        "hit_rate": round(hit_rate, 4),
        "reads": reads,
        "storage_reads": storage_reads,
        "simulated_s": total_s,
    }
    _p1_criterion.series = {"t_s": t_s, "hit_rate": rates, "window_hit_rate": window}
    _p1_criterion.summary = (
        f"hit rate {hit_rate:.1%} after {w.minutes:g} simulated min "
        f"({reads} reads, {storage_reads} from storage)"
    )
    if hit_rate <= MIN_HIT_RATE:
        _fail(
            f"hit rate {hit_rate:.1%} is not above {MIN_HIT_RATE:.0%} after {w.minutes:g} simulated "
            f"minutes: {storage_reads} of {reads} reads went to Redis (counted by the harness).",
            f"Workload: {w.policies} policies, {w.reads_per_s:g} reads/s, {w.updates_per_min:g} "
            f"updates/min over {w.instances} instances, TTL {p1_target.policy_ttl:g} s.",
            "Check that hits are served from memory and that only the updated policy is invalidated.",
            READ_MORE,
        )


def check_ttl(
    p1_target: P1Target,
    policy_cluster: Callable[..., Any],
    virtual_clock: VirtualClock,
    _p1_criterion: CriterionRecord,
) -> None:
    """Entries expire after the TTL, even when an invalidation is lost."""
    ttl = p1_target.policy_ttl
    cluster = policy_cluster(2)
    name = _probe_name("ttl")
    cluster.update(0, name, {"v": 1})
    cluster.settle()
    assert cluster.read(1, name) == {"v": 1}
    reads = cluster.storage_reads[1]
    virtual_clock.advance(ttl * 0.5)
    cached = cluster.read(1, name)
    if cluster.storage_reads[1] != reads:
        _fail(
            f"instance 1 did not cache {name!r}: a read at half the TTL ({ttl / 2:g} s) went to Redis.",
            READ_MORE,
        )
    # Lose the invalidation for instance 1: only the TTL can now refresh it.
    pubsub = cluster.pubsub(1)
    pubsub.hold()
    cluster.update(0, name, {"v": 2})
    pubsub.wait_pending(1)
    pubsub.drop(len(pubsub.pending))
    pubsub.release()
    virtual_clock.advance(ttl * 0.5 + 0.001)
    expired = cluster.read(1, name)
    _p1_criterion.figures = {"ttl_s": ttl}
    _p1_criterion.summary = f"entries expire after the {ttl:g} s TTL"
    if expired != {"v": 2}:
        _p1_criterion.summary = f"an entry outlived the {ttl:g} s TTL"
        _fail(
            f"an entry outlived its TTL: {ttl:g} s after it was cached, with its invalidation "
            f"lost, instance 1 still served {expired!r} instead of {{'v': 2}} (it served "
            f"{cached!r} before).",
            "Store each entry's expiry from the injected clock and treat expired entries as misses.",
            READ_MORE,
        )


def check_invalidation(
    p1_settings: P1Settings,
    policy_cluster: Callable[..., Any],
    _p1_criterion: CriterionRecord,
) -> None:
    """An update on any instance invalidates every instance (OS processes on a real Redis)."""
    instances = p1_settings.instances
    # On a real Redis the instances are OS processes, as backends run in
    # production; fakeredis lives in this process, so they share its loop.
    processes = p1_settings.redis_mode != "fake"
    cluster = policy_cluster(instances, processes=processes)
    name = _probe_name("inv")
    rounds = max(8, 2 * instances)
    for k in range(rounds):
        if k:  # warm every instance, so a missed invalidation shows as a stale read
            cluster.read_all(name)
        value = {"v": k + 1, "writer": k % instances}
        cluster.update(k % instances, name, value)
        try:
            cluster.assert_converged(name, value)
        except AssertionError as exc:
            _fail(
                f"after an update on instance {k % instances}, not every instance converged.",
                str(exc),
                "Subscribe every instance to the invalidation channel and drop the cached entry "
                "on each message.",
                READ_MORE,
            )
    stats = cluster.stats()
    found = cluster.propagation()
    per_instance = [
        _p99([p.ms for p in found if p.instance == i and p.ms is not None])
        for i in range(instances)
    ]
    p50 = stats.propagation_p50_ms or 0.0
    p99 = stats.propagation_p99_ms or 0.0
    _p1_criterion.figures = {
        "instances": instances,
        "updates": rounds,
        "propagation_p50_ms": round(p50, 3),
        "propagation_p99_ms": round(p99, 3),
    }
    _p1_criterion.series = {"propagation_p99_ms": per_instance}
    layout = "processes" if processes else "instances"
    _p1_criterion.summary = (
        f"{instances} {layout} converged after {rounds} updates; propagation p99 {p99:.2f} ms"
    )
    if stats.missing_propagations:
        _fail(
            f"{stats.missing_propagations} invalidation(s) were never processed by their instance, "
            "although reads converged (the entries may simply not have been cached).",
            READ_MORE,
        )


def _p99(values: Sequence[float]) -> float:
    from pytest_quantum_p1._units import percentile

    return percentile(values, 99) if values else 0.0


def check_no_stale_reads(
    p1_target: P1Target,
    p1_redis_factory: Callable[[], Any],
    _p1_criterion: CriterionRecord,
) -> None:
    """A Hypothesis state machine finds no stale read."""
    from pytest_quantum_p1._stateful import check_no_stale_reads as hunt

    result = hunt(
        p1_target.store_factory,
        p1_target.policy_ttl,
        p1_redis_factory,
        time_budget_s=3.0,
        channel=p1_target.invalidation_channel,
    )
    _p1_criterion.figures = {"examples": result.examples, "max_stale_age_s": result.max_stale_age_s}
    _p1_criterion.summary = f"no stale read in {result.examples} generated scenarios"
    if result.failures:
        _p1_criterion.summary = f"stale read found in {result.examples} generated scenarios"
        _fail(
            "the property-based search found a stale read:",
            result.failures,
            "Drop an entry on each invalidation, flush the cache when the invalidation link is "
            "lost, and never cache a read that raced an invalidation.",
            READ_MORE,
        )


# --- P1-3 federation v2 ----------------------------------------------------------


def check_files_removed(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The legacy v2 files are gone."""
    from pytest_quantum_p1._v2 import check_removed

    rules = p1_target.v2
    left = check_removed(rules.removed_paths, rules.source_roots)
    _p1_criterion.figures = {"removed": len(rules.removed_paths), "still_present": len(left)}
    _p1_criterion.summary = f"{len(rules.removed_paths)} legacy v2 files absent"
    if left:
        _p1_criterion.summary = (
            f"{len(left)} of {len(rules.removed_paths)} legacy v2 files still present"
        )
        _fail(
            f"{len(left)} legacy v2 file(s) still exist:",
            *_bullets([str(p) for p in left]),
            "Delete them (the seed keeps only federated_engine_v2.py, for the bridge).",
            READ_MORE,
        )


def check_no_direct_imports(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Nothing but the bridge imports v2."""
    from pytest_quantum_p1._v2 import format_violations, scan_v2_usage

    rules = p1_target.v2
    result = scan_v2_usage(rules.source_roots, rules.v2_modules, rules.bridge_modules)
    _p1_criterion.figures = {
        "files_scanned": result.files_scanned,
        "violations": len(result.violations),
    }
    _p1_criterion.summary = (
        f"{result.files_scanned} files scanned, {len(result.violations)} direct v2 imports"
    )
    if not result.ok:
        _fail(format_violations(result, rules))


def _engine_class(spec: str) -> type:
    import importlib

    module_name, _, attr = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not isinstance(cls, type):
        raise TypeError(f"{spec} is not a class")
    return cls


def check_deprecation_warning(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """Constructing the v2 engine warns DeprecationWarning at the caller's line."""
    engine = _engine_class(p1_target.v2.engine_class)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        here = _line_after()
        engine()
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    _p1_criterion.figures = {"warnings": len(deprecations)}
    _p1_criterion.summary = f"{engine.__name__}() warns DeprecationWarning at the caller's line"
    if not deprecations:
        _p1_criterion.summary = f"{engine.__name__}() emits no DeprecationWarning"
        others = [f"{w.category.__name__}: {w.message}" for w in caught]
        _fail(
            f"constructing {engine.__name__} emitted no DeprecationWarning.",
            *(["Warnings seen:", *_bullets(others)] if others else []),
            "In __init__: warnings.warn('... deprecated ...', DeprecationWarning, stacklevel=2).",
            READ_MORE,
        )
    first = deprecations[0]
    if (first.filename, first.lineno) != here:
        _p1_criterion.summary = (
            f"{engine.__name__}() warns at {Path(first.filename).name}:{first.lineno}, "
            "not at its caller"
        )
        _fail(
            f"the DeprecationWarning of {engine.__name__} points at {first.filename}:{first.lineno}, "
            f"not at the line that constructed it ({here[0]}:{here[1]}).",
            "Pass stacklevel=2 to warnings.warn so users see their own line.",
            READ_MORE,
        )


def _line_after() -> tuple[str, int]:
    """The file and line just after the caller's line (where the engine is built)."""
    import sys

    frame = sys._getframe(1)
    return frame.f_code.co_filename, frame.f_lineno + 1


def check_bridge_only(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """At run time, only the bridge constructs the v2 engine."""
    from pytest_quantum_p1._v2 import V2Guard

    rules = p1_target.v2
    bus = p1_target.bus()
    with V2Guard.from_rules(rules) as guard, _quiet_v2_warnings():
        for event in p1_target.required_events:
            _run(event.action(bus))
        if rules.relay_probe is not None:
            _run(rules.relay_probe(bus, {"round_id": _probe_name("guard")}))
    constructions = guard.constructions
    _p1_criterion.figures = {
        "constructions": len(constructions),
        "outside_bridge": len(guard.violations),
    }
    _p1_criterion.summary = f"{len(constructions)} v2 engine constructions, all through the bridge"
    if guard.violations:
        _p1_criterion.summary = (
            f"{len(constructions)} v2 engine constructions, {len(guard.violations)} outside "
            "the bridge"
        )
        _fail(guard.format_violations())


def check_bridge_relays(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The bridge relays v3 federation events to v2 nodes."""
    probe = p1_target.v2.relay_probe
    if probe is None:
        pytest.skip("the target declares no relay_probe")
    payload = {"round_id": _probe_name("relay"), "metrics": {"loss": 0.25}}
    with _quiet_v2_warnings():
        received = _run(probe(p1_target.bus(), payload))
    problems = [
        f"{node}: received {len(got)} message(s): {[dict(m) for m in got]!r}"
        for node, got in received.items()
        if [dict(m) for m in got] != [payload]
    ]
    reached = len(received) - len(problems)
    _p1_criterion.figures = {"nodes": len(received), "nodes_reached": reached}
    _p1_criterion.summary = f"relayed to {reached}/{len(received)} v2 node(s), once each"
    if not received:
        problems.append("the probe registered no v2 node, so nothing could be relayed")
    if problems:
        _fail(
            f"the bridge did not relay the v3 event exactly once to every v2 node "
            f"({reached} of {len(received)} got it):",
            f"  sent: {payload!r}",
            *_bullets(problems),
            "Subscribe the bridge to the v3 federation events and call broadcast_to_v2_nodes.",
            READ_MORE,
        )


def check_docs(p1_target: P1Target, _p1_criterion: CriterionRecord) -> None:
    """The architecture docs name v3 as primary and v2 as deprecated."""
    from pytest_quantum_p1._v2 import check_docs as problems_in

    rules = p1_target.v2
    problems = problems_in(rules.docs, rules.doc_notice)
    _p1_criterion.figures = {"docs": len(rules.docs), "problems": len(problems)}
    _p1_criterion.summary = f"{len(rules.docs)} docs carry the deprecation notice"
    if problems:
        _p1_criterion.summary = f"{len(problems)} notice problem(s) in {len(rules.docs)} docs"
        _fail(
            "the architecture docs do not all carry the federation notice:",
            *_bullets(problems),
            "Add the seed's notice: '**Current:** Federation v3 (EventBus-based)' and "
            "'**Deprecated:** Federation v2 (retained for bridge compatibility only)'.",
            READ_MORE,
        )


# --- deployment -----------------------------------------------------------------


def check_health(
    p1_target: P1Target, p1_redis_factory: Callable[[], Any], _p1_criterion: CriterionRecord
) -> None:
    """The target's health check reports healthy."""
    health = p1_target.health
    if health is None:
        pytest.skip("the target declares no health check")

    async def probe() -> Mapping[str, Any]:
        client = p1_redis_factory()
        try:
            return await health(p1_target.bus(), client)
        finally:
            await client.aclose()

    started = time.perf_counter()
    report = asyncio.run(probe())
    _p1_criterion.figures = {"health_ms": round((time.perf_counter() - started) * 1000, 3)}
    _p1_criterion.summary = f"health status {report.get('status')!r}"
    if report.get("status") != "ok":
        _fail(
            f"the health check reports {report.get('status')!r}, not 'ok':",
            *_bullets([f"{k}: {v!r}" for k, v in report.items() if k != "status"]),
            "Fix what the report names as down; the target's health function decides 'ok'.",
            READ_MORE,
        )


# --- the list -------------------------------------------------------------------


def criteria_for(target: P1Target) -> list[Criterion]:
    """The success criteria, in checklist order, for ``target``."""
    events = [
        Criterion(
            EVENT_IDS.get(event.name, f"P1-1.event:{event.name}"),
            "P1-1",
            f"the real action publishes {event.name} with its payload and a UTC timestamp",
            _event_check(event),
        )
        for event in target.required_events
    ]
    return [
        Criterion(
            "P1-1.catalogue",
            "P1-1",
            "the required events are in the bus catalogue",
            check_catalogue,
        ),
        *events,
        Criterion(
            "P1-1.logged", "P1-1", "each required event is logged for monitoring", check_logged
        ),
        Criterion(
            "P1-2.cached-read",
            "P1-2",
            "cached reads stay under the latency budget",
            check_cached_read,
        ),
        Criterion(
            "P1-2.cold-vs-warm", "P1-2", "the cache pays off against storage", check_cold_vs_warm
        ),
        Criterion(
            "P1-2.hit-rate", "P1-2", "hit rate > 90% after 5 minutes of operation", check_hit_rate
        ),
        Criterion("P1-2.ttl", "P1-2", "entries expire after the TTL", check_ttl),
        Criterion(
            "P1-2.invalidation",
            "P1-2",
            "every instance converges after an update on any one",
            check_invalidation,
        ),
        Criterion(
            "P1-2.no-stale-reads",
            "P1-2",
            "property-based search finds no stale read",
            check_no_stale_reads,
        ),
        Criterion(
            "P1-3.files-removed", "P1-3", "the legacy v2 files are removed", check_files_removed
        ),
        Criterion(
            "P1-3.no-direct-imports",
            "P1-3",
            "nothing but the bridge imports v2",
            check_no_direct_imports,
        ),
        Criterion(
            "P1-3.deprecation-warning",
            "P1-3",
            "the v2 engine warns DeprecationWarning at its caller",
            check_deprecation_warning,
        ),
        Criterion(
            "P1-3.bridge-only-at-runtime",
            "P1-3",
            "only the bridge constructs the v2 engine at run time",
            check_bridge_only,
        ),
        Criterion(
            "P1-3.bridge-relays",
            "P1-3",
            "the bridge relays v3 events to v2 nodes",
            check_bridge_relays,
        ),
        Criterion(
            "P1-3.docs", "P1-3", "the docs name v3 as primary and v2 as deprecated", check_docs
        ),
        Criterion("deploy.health", "deploy", "the health check reports healthy", check_health),
    ]


class _Suite(pytest.Collector):
    def __init__(self, *, criteria: Sequence[Criterion], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._criteria = criteria

    def collect(self) -> list[pytest.Item]:
        items: list[pytest.Item] = []
        for criterion in self._criteria:
            item = CriterionItem.from_parent(self, name=criterion.id, callobj=criterion.check)
            item.record = CriterionRecord(
                id=criterion.id, task=criterion.task, title=criterion.title
            )
            items.append(item)
        return items


def collect_criteria(session: pytest.Session, target: P1Target) -> list[pytest.Item]:
    """Collect the acceptance items, reporting them like any collected test."""
    suite = _Suite.from_parent(
        session, name="quantum-p1", nodeid="quantum-p1", criteria=criteria_for(target)
    )
    report = suite.ihook.pytest_make_collect_report(collector=suite)
    suite.ihook.pytest_collectreport(report=report)
    return [node for node in report.result if isinstance(node, pytest.Item)]


# --- hooks of a --p1 run ------------------------------------------------------------


def _outcome(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    if report.passed:
        return "passed"
    if report.skipped:
        return "skipped"
    # A check's verdict is pytest.fail(); anything else is the harness or the
    # target breaking while being checked.
    if call.excinfo is not None and call.excinfo.errisinstance(pytest.fail.Exception):
        return "failed"
    return "error"


def _message(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    if report.passed:
        return ""
    if call.excinfo is not None and call.excinfo.errisinstance(pytest.fail.Exception):
        # The criterion's own words: the longrepr would add pytest's note on
        # hidden traceback entries and any exception the verdict was raised in.
        return str(call.excinfo.value)
    if call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        # The harness or the target broke: the exception line, not a traceback
        # (that is in the FAILURES section above the checklist).
        return call.excinfo.exconly()
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    return report.longreprtext.strip()


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for dist in (
        "pytest-quantum-p1",
        "pytest",
        "redis",
        "fakeredis",
        "hypothesis",
        "pytest-benchmark",
    ):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


class AcceptanceHooks:
    """The hooks (and criterion-only fixtures) of a ``--p1`` run; registered by the plugin."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.time()
        #: Records by criterion id, as carried on the reports (so xdist works too).
        self.records: dict[str, dict[str, Any]] = {}
        #: Criterion ids in checklist order (runs may finish out of order under xdist).
        self.order: list[str] = []
        #: The JSON and HTML paths, once written.
        self.written: tuple[Path, Path] | None = None

    @pytest.fixture
    def _p1_criterion(self, request: pytest.FixtureRequest) -> CriterionRecord:
        # The record an acceptance criterion fills with its figures.
        record: CriterionRecord = request.node.record
        return record

    @pytest.fixture
    def _p1_workload(self, p1_settings: P1Settings) -> Workload:
        return p1_settings.workload

    def pytest_ignore_collect(self) -> bool | None:
        # ``pytest --p1`` without paths runs only the criteria; given paths,
        # the user's tests run beside them.
        if self.config.args_source is not pytest.Config.ArgsSource.ARGS:
            return True
        return None

    @pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so criteria can be selected
    def pytest_collection_modifyitems(
        self, session: pytest.Session, items: list[pytest.Item]
    ) -> None:
        from pytest_quantum_p1._options import SETTINGS_KEY
        from pytest_quantum_p1._target import TargetError, load_configured_target

        settings = self.config.stash[SETTINGS_KEY]
        try:
            target = load_configured_target(self.config, settings.target, settings.target_source)
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None
        criteria = collect_criteria(session, target)
        self.order = [item.name for item in criteria]
        items[0:0] = criteria

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not isinstance(item, CriterionItem):
            return report
        record = item.record
        if call.when == "call" or (call.when == "setup" and not report.passed):
            record.outcome = _outcome(report, call)
            record.message = _message(report, call)
            record.duration_s = call.duration
            for name, value in record.figures.items():
                prop = (f"p1.{record.id}.{name}", value)
                # The call report for xdist and hooks; the item for the teardown
                # report, which is the one junitxml writes properties from.
                report.user_properties.append(prop)
                item.user_properties.append(prop)
            report.p1_record = {  # type: ignore[attr-defined]
                **record.as_json(),
                "series": record.series,
                # The controller of an xdist run never collects: carry the position.
                "position": self.order.index(record.id),
            }
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "p1_record", None)
        if isinstance(record, dict):
            self.records[record["id"]] = record

    def _ordered(self) -> list[CriterionRecord]:
        ordered = sorted(self.records.values(), key=lambda data: data["position"])
        return [
            CriterionRecord(
                **{k: v for k, v in data.items() if k in CriterionRecord.__dataclass_fields__}
            )
            for data in ordered
        ]

    def _meta(self) -> dict[str, Any]:
        from pytest_quantum_p1._options import SETTINGS_KEY, redis_for_report

        settings = self.config.stash[SETTINGS_KEY]
        return {
            "target": settings.target,
            "redis": redis_for_report(settings),
            "latency_budget_ns": settings.latency_budget_ns,
            "instances": settings.instances,
            "versions": _versions(),
            "started_at": datetime.fromtimestamp(self.started).astimezone().isoformat(),
            "duration_s": round(time.time() - self.started, 3),
        }

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from pytest_quantum_p1._options import SETTINGS_KEY
        from pytest_quantum_p1._report import write_reports

        if exitstatus == pytest.ExitCode.USAGE_ERROR:
            return  # nothing was checked: an empty report would read as a clean run
        settings = self.config.stash[SETTINGS_KEY]
        if settings.report is not None and not hasattr(self.config, "workerinput"):
            self.written = write_reports(settings.report, self._ordered(), self._meta())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pytest_quantum_p1._report import terminal_lines

        if hasattr(self.config, "workerinput"):
            return
        terminalreporter.write_sep("=", "quantum-p1 acceptance")
        for line in terminal_lines(self._ordered()):
            terminalreporter.write_line(line)
        if self.written:
            terminalreporter.write_line(f"report: {self.written[0]} and {self.written[1]}")
