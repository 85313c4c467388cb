"""The success criteria in checklist order (:func:`criteria_for`), and their pytest items.

Each row names a criterion id and its criterion function; the task is the id's
prefix and the title the one in ``_messages.ACCEPTANCE_CRITERION_TITLES``.
:func:`collect_criteria` turns the rows into :class:`CriterionItem` s under one
``quantum-p1`` collector, reported like any collected test.

Every criterion runs under a deadline (:meth:`CriterionItem.runtest`):
``--p1-timeout`` times its factor in :data:`DEADLINE_FACTORS` (1 unless
named there), so one option scales the whole run for a slower machine.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_quantum_p1 import _messages, _options
from pytest_quantum_p1._acceptance.deploy import criterion_health
from pytest_quantum_p1._acceptance.drive import ProgressLine, run_within
from pytest_quantum_p1._acceptance.p1_1 import (
    criterion_catalogue,
    criterion_failing_subscriber,
    criterion_logged,
    event_criterion,
)
from pytest_quantum_p1._acceptance.p1_2 import (
    criterion_cached_read,
    criterion_cold_vs_warm,
    criterion_counters,
    criterion_garbage_messages,
    criterion_hit_rate,
    criterion_invalidation,
    criterion_link_recovery,
    criterion_no_reparse,
    criterion_no_stale_reads,
    criterion_read_your_writes,
    criterion_ttl,
    criterion_write_then_invalidate,
)
from pytest_quantum_p1._acceptance.p1_2_cluster import (
    criterion_cluster_failover,
    criterion_cluster_node_loss,
    criterion_cluster_shards,
)
from pytest_quantum_p1._acceptance.p1_3 import (
    criterion_bridge_only_at_runtime,
    criterion_bridge_relays,
    criterion_deprecation_warning,
    criterion_docs,
    criterion_files_removed,
    criterion_no_direct_imports,
)
from pytest_quantum_p1._acceptance.record import CriterionRecord
from pytest_quantum_p1._redis.namespace import using_prefix

if TYPE_CHECKING:
    from pytest_quantum_p1._target import P1Target

__all__ = [
    "DEADLINE_FACTORS",
    "EVENT_IDS",
    "HYPOTHESIS_CRITERIA",
    "Criterion",
    "CriterionItem",
    "collect_criteria",
    "criteria_for",
]

#: Criteria whose deadline is a multiple of ``--p1-timeout``. On the reference
#: (fakeredis, this repository's 2-core machine) every other criterion takes
#: under 0.3 s (a real server's process-backed invalidation about 2.5 s) against
#: a default deadline of 30 s; these two take 1-1.3 s and 3-10 s against 120 s.
DEADLINE_FACTORS: Mapping[str, float] = {
    "P1-2.hit-rate": 4.0,
    "P1-2.no-stale-reads": 4.0,
}

#: Seconds the closing of an overrun criterion's clusters is waited for before
#: it is left to its own thread: enough to mark them closed for the fixture's teardown.
_ABANDON_GRACE_S = 1.0

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
    """One success criterion: its id, task, title and criterion function."""

    id: str
    task: str
    title: str
    check: Callable[..., None]


def _row(id: str, check: Callable[..., None], title: str | None = None) -> Criterion:
    return Criterion(
        id=id,
        task=id.partition(".")[0],
        title=_messages.ACCEPTANCE_CRITERION_TITLES[id] if title is None else title,
        check=check,
    )


def criteria_for(target: P1Target, *, cluster: bool = False) -> list[Criterion]:
    """The success criteria, in checklist order, for ``target``; ``cluster``: on a Redis Cluster."""
    events = [
        _row(
            EVENT_IDS.get(event.name, f"P1-1.event:{event.name}"),
            event_criterion(event),
            _messages.ACCEPTANCE_EVENT_TITLE.format(name=event.name),
        )
        for event in target.required_events
    ]
    return [
        _row("P1-1.catalogue", criterion_catalogue),
        *events,
        _row("P1-1.logged", criterion_logged),
        _row("P1-1.failing-subscriber", criterion_failing_subscriber),
        _row("P1-2.cached-read", criterion_cached_read),
        _row("P1-2.cold-vs-warm", criterion_cold_vs_warm),
        _row("P1-2.no-reparse", criterion_no_reparse),
        _row("P1-2.hit-rate", criterion_hit_rate),
        _row("P1-2.counters", criterion_counters),
        _row("P1-2.ttl", criterion_ttl),
        _row("P1-2.invalidation", criterion_invalidation),
        _row("P1-2.read-your-writes", criterion_read_your_writes),
        _row("P1-2.write-then-invalidate", criterion_write_then_invalidate),
        _row("P1-2.link-recovery", criterion_link_recovery),
        _row("P1-2.garbage-messages", criterion_garbage_messages),
        _row("P1-2.no-stale-reads", criterion_no_stale_reads),
        *(
            [
                _row("P1-2.cluster-shards", criterion_cluster_shards),
                _row("P1-2.cluster-failover", criterion_cluster_failover),
                _row("P1-2.cluster-node-loss", criterion_cluster_node_loss),
            ]
            if cluster
            else []
        ),
        _row("P1-3.files-removed", criterion_files_removed),
        _row("P1-3.no-direct-imports", criterion_no_direct_imports),
        _row("P1-3.deprecation-warning", criterion_deprecation_warning),
        _row("P1-3.bridge-only-at-runtime", criterion_bridge_only_at_runtime),
        _row("P1-3.bridge-relays", criterion_bridge_relays),
        _row("P1-3.docs", criterion_docs),
        _row("deploy.health", criterion_health),
    ]


class CriterionItem(pytest.Function):
    """A test item running one criterion; carries its :class:`CriterionRecord`."""

    record: CriterionRecord

    def reportinfo(self) -> tuple[str, int | None, str]:
        # Criteria live in no test file; name them by id, not by module path.
        # Line 0, not None: a skip raised by a fixture (no redis-server) is
        # reported at the item's location, which pytest requires to have a line.
        return ("quantum-p1", 0, f"{self.name}: {self.record.title}")

    @property
    def deadline_s(self) -> float:
        """Seconds this criterion may take: ``--p1-timeout`` times its factor."""
        settings = self.config.stash[_options.SETTINGS_KEY]
        return settings.timeout_ns / 1e9 * DEADLINE_FACTORS.get(self.name, 1.0)

    def runtest(self) -> None:
        """Run the criterion in a worker thread under its deadline (see ``drive.run_within``).

        The clusters it opens are closed before the deadline too, in the
        worker: a store's ``close`` is a call into the target like any other.
        """
        __tracebackhide__ = True
        opened: list[Any] = []
        factory = self.funcargs.get("policy_cluster")
        if callable(factory):

            def tracking(*args: Any, **kwargs: Any) -> Any:
                cluster = factory(*args, **kwargs)
                opened.append(cluster)
                return cluster

            self.funcargs["policy_cluster"] = tracking

        def close_opened() -> None:
            errors = []
            for cluster in opened:
                try:
                    cluster.close()
                except Exception as exc:  # close the others first, then report
                    errors.append(exc)
            if errors:
                raise errors[0]

        def stuck_in(function: str) -> None:
            self.record.summary = _messages.DEADLINE_SUMMARY.format(function=function)

        seconds = self.deadline_s
        # The names the check makes live in its Redis's namespace (empty on a
        # Redis of the harness's own); the worker runs in a copy of this context.
        source = self.funcargs.get("_p1_redis_source")
        progress = ProgressLine(self.config, self.name)
        started = time.monotonic()
        with (
            using_prefix(getattr(source, "namespace", "")),
            progress.reporting(),
            _hypothesis_storage_elsewhere(self.name),
        ):
            try:
                run_within(
                    super().runtest,
                    seconds,
                    name=self.name,
                    timeout_option=_options.OPT_TIMEOUT,
                    cleanup=close_opened,
                    on_overrun=lambda: _abandon(opened),
                    on_stuck=stuck_in,
                    on_tick=progress.tick,
                )
            finally:
                progress.finish(time.monotonic() - started)


#: Criteria that run Hypothesis (it is imported for them if it is not yet).
HYPOTHESIS_CRITERIA = frozenset({"P1-2.no-stale-reads"})


@contextmanager
def _hypothesis_storage_elsewhere(name: str) -> Iterator[None]:
    """While a criterion runs, Hypothesis keeps its files in a directory of the run's own.

    Hypothesis writes caches (``unicode_data/``, ``constants/``) under its home
    directory, ``./.hypothesis`` by default: an acceptance run must leave the
    user's working directory as it found it. The search keeps no example
    database (``database=None``), so caches are what it would write. The home
    directory is put back afterwards, so the user's own Hypothesis tests in the
    same session keep theirs. Hypothesis is not imported for a criterion that
    does not use it.
    """
    if name not in HYPOTHESIS_CRITERIA and "hypothesis" not in sys.modules:
        yield
        return
    from hypothesis import configuration

    try:
        found: Any = configuration.storage_directory(intent_to_write=False)
    except TypeError:  # an older Hypothesis: no intent_to_write, and the Path itself
        found = configuration.storage_directory()
    home = getattr(found, "path", found)
    with tempfile.TemporaryDirectory(
        prefix="quantum-p1-hypothesis-", ignore_cleanup_errors=True
    ) as own:
        configuration.set_hypothesis_home_dir(own)
        try:
            yield
        finally:
            configuration.set_hypothesis_home_dir(home)


def _abandon(clusters: Sequence[Any]) -> None:
    """Close what an overrun check left open, each in a daemon thread; wait only briefly.

    A cluster whose portal is blocked by a stuck store would hold its closer
    for minutes; started here, the closer marks the cluster closed at once, so
    the fixture's teardown does not wait for it again.
    """

    def close(cluster: Any) -> None:
        with suppress(BaseException):  # nobody is left to report to
            cluster.close()

    closers = [threading.Thread(target=close, args=(c,), daemon=True) for c in clusters]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(_ABANDON_GRACE_S / max(1, len(closers)))


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
    mode = session.config.stash[_options.SETTINGS_KEY].redis_mode
    criteria = criteria_for(target, cluster=mode in ("cluster", "cluster-url"))
    suite = _Suite.from_parent(session, name="quantum-p1", nodeid="quantum-p1", criteria=criteria)
    report = suite.ihook.pytest_make_collect_report(collector=suite)
    suite.ihook.pytest_collectreport(report=report)
    return [node for node in report.result if isinstance(node, pytest.Item)]
