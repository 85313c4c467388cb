"""The stale-read search: repeatable, big enough, able to reach the races it promises, and honest.

- every seed finds a listener that dies on one garbage message, and the same
  seed draws the same scenarios in any process, whatever it imported;
- ``split_update`` holds an update between its two commands: a store that
  publishes before it stores is caught, correct orders of every shape pass;
- ``update(read_back=True)`` reads on the writer at once: a writer serving its
  old copy is caught;
- a store's own write after a lost link may be served (write-through);
- the machine's waits are settable: a store with a reconnect backoff is
  checked, not timed out;
- what is no verdict is an error with its cause, in the search and in the
  acceptance run: a factory or ``initialize()`` that raises or hangs, stores
  that never settle after ``initialize()``; a store that stops reacting is a
  failed verdict saying so, never "stale read found".
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_quantum_p1._messages import (
    MACHINE_NOT_READ_YOUR_WRITES,
    MACHINE_RECONNECT_HINT,
    MACHINE_STALE_READ,
    P1_2_SEARCH_FOUND,
)
from pytest_quantum_p1._stateful import (
    DEFAULT_SCENARIOS,
    CouldNotRun,
    InvalidationError,
    Operation,
    check_no_stale_reads,
    machine_for,
    replay,
)
from pytest_quantum_p1._target import Clock, PolicyStore, StoreFactory
from reference_impl.p1_target import TARGET
from tests.plugin import broken_stateful
from tests.plugin.broken_targets import read_report, run_p1
from tests.plugin.verdicts import REPORT, SLOW_ID, Break, assert_breaks_exactly
from tests.stores import (
    TTL,
    AnnouncesBeforeAndAfter,
    AwaitsOwnInvalidation,
    BacksOffBeforeResubscribing,
    DiesOnGarbage,
    DiesOnUnknownMessages,
    HangsOnInitialize,
    InvalidatesByKeyList,
    KeepsItsOldCopy,
    NeverReads,
    PublishesBeforeStoring,
    RacyFill,
    RaisesInFactory,
    RaisesOnInitialize,
    StallsOnGarbage,
    ToyStore,
    WordsItsOwnMessages,
    WritesThrough,
    WritesThroughWhileLinked,
)

REPO = Path(__file__).resolve().parents[2]


def factory_of(cls: type[ToyStore]) -> StoreFactory:
    def make(redis: Any, clock: Clock) -> PolicyStore:
        return cls(redis, clock)

    make.__name__ = cls.__name__
    return make


def head(template: str) -> str:
    return template.split("{", 1)[0]


@pytest.fixture(autouse=True)
def _quiet_stores(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR")


# -- repeatable, and big enough ------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_a_listener_that_dies_on_garbage_is_found_with_every_seed(seed: int) -> None:
    # The default search (its minimum, every rule), as P1-2.no-stale-reads runs it.
    result = check_no_stale_reads(factory_of(DiesOnGarbage), TTL, seed=seed, shrink=False)
    assert result.failures is not None
    assert "died: UnicodeDecodeError" in result.failures
    assert result.found_after is not None
    assert result.found_after <= DEFAULT_SCENARIOS


#: Runs a short search in a fresh process and prints every scenario's steps as JSON;
#: with ``import-more``, it first imports a local module full of constants, which
#: Hypothesis would mix into what it draws.
SCENARIOS_SCRIPT = textwrap.dedent(
    """\
    import json, logging, sys
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    logging.disable(logging.WARNING)
    if sys.argv[1] == "import-more":
        import many_constants  # noqa: F401
    from pytest_quantum_p1._stateful import InvalidationMachine, check_no_stale_reads
    from tests.stores import TTL, ToyStore

    traces = []
    teardown = InvalidationMachine.teardown

    def record(self):
        traces.append(list(self.trace))
        teardown(self)

    InvalidationMachine.teardown = record
    factory = lambda redis, clock: ToyStore(redis, clock)  # noqa: E731
    check_no_stale_reads(factory, TTL, scenarios=25, seed=7, parallel=False)
    print(json.dumps(traces))
    """
)


def _scenarios_in_a_new_process(tmp_path: Path, mode: str) -> list[list[str]]:
    script = tmp_path / "scenarios.py"
    script.write_text(SCENARIOS_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), mode, str(REPO), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    traces: list[list[str]] = json.loads(done.stdout)
    return traces


def test_the_same_seed_draws_the_same_scenarios_in_any_process(tmp_path: Path) -> None:
    constants = [repr(n) for n in range(-3, 40)] + [repr(f"k{n}") for n in range(40)]
    (tmp_path / "many_constants.py").write_text(
        "VALUES = [" + ", ".join(constants) + ", 0.5, 2.5, 'a', 'b', b'x']\n"
    )
    plain = _scenarios_in_a_new_process(tmp_path, "plain")
    more = _scenarios_in_a_new_process(tmp_path, "import-more")
    assert len(plain) >= 25
    assert plain == more


@pytest.mark.parametrize("store", [DiesOnGarbage, RacyFill, ToyStore], ids=lambda cls: cls.__name__)
def test_parts_side_by_side_find_what_they_find_one_after_the_other(
    store: type[ToyStore],
) -> None:
    def search(parallel: bool) -> tuple[Any, ...]:
        result = check_no_stale_reads(
            factory_of(store), TTL, scenarios=60, shrink=False, parallel=parallel
        )
        return (result.scenarios, result.steps, result.seed, result.kind, result.failures)

    assert search(parallel=True) == search(parallel=False)


# -- the held write: between its storage write and its publish ------------------------------

#: Instance 1 caches ``a``; instance 0's update is held between its two commands
#: while everything it published is delivered and instance 1 reads.
SPLIT = [
    Operation("read", {"instance": 1, "name": "a"}),
    Operation("split_update", {"writer": 0, "reader": 1, "name": "a", "after": 1}),
]


def test_a_store_that_publishes_before_it_stores_is_caught() -> None:
    with pytest.raises(InvalidationError) as excinfo:
        replay(machine_for(factory_of(PublishesBeforeStoring)), SPLIT, names=("a",))
    assert excinfo.value.kind == "stale"
    message = str(excinfo.value)
    assert message.startswith(head(MACHINE_STALE_READ))
    assert "delivered before the update returned" in message
    assert "state.split_update(after=1, name='a', reader=1, writer=0)" in message


def test_the_search_finds_a_store_that_publishes_before_it_stores() -> None:
    result = check_no_stale_reads(factory_of(PublishesBeforeStoring), TTL, shrink=False)
    assert result.kind == "stale"
    assert result.failures is not None
    assert "state.split_update(" in result.failures


@pytest.mark.parametrize(
    "store",
    [
        ToyStore,
        AnnouncesBeforeAndAfter,
        WordsItsOwnMessages,
        InvalidatesByKeyList,
        DiesOnUnknownMessages,
        WritesThroughWhileLinked,
    ],
    ids=lambda cls: cls.__name__,
)
def test_correct_update_orders_pass_the_held_write(store: type[ToyStore]) -> None:
    # Store then publish; publish, store, publish again; its own message formats (JSON
    # objects, lists of keys, a listener dying on anything else); write-through.
    replay(machine_for(factory_of(store)), [*SPLIT, *SPLIT[1:]], names=("a",))


def test_the_reference_passes_the_held_write() -> None:
    replay(machine_for(TARGET), SPLIT, names=("a",))


def test_a_store_that_awaits_its_own_invalidation_is_not_held_forever() -> None:
    # It returns from update_policy once its own invalidation came back: the
    # machine, which holds every message, hands the writer what it holds.
    steps = [
        Operation("update", {"instance": 0, "name": "a", "policy": {}, "read_back": True}),
        Operation("split_update", {"writer": 0, "reader": 1, "name": "a", "after": 2}),
        Operation("split_update", {"writer": 1, "reader": 0, "name": "a", "after": 1}),
    ]
    machine = machine_for(factory_of(AwaitsOwnInvalidation), step_timeout=5.0)
    replay(machine, steps, names=("a",))


# -- the writer reads at once ---------------------------------------------------------------

READ_BACK = [
    Operation("read", {"instance": 0, "name": "a"}),
    Operation("update", {"instance": 0, "name": "a", "policy": {}, "read_back": True}),
]


def test_a_writer_serving_its_old_copy_is_caught() -> None:
    with pytest.raises(InvalidationError) as excinfo:
        replay(machine_for(factory_of(KeepsItsOldCopy)), READ_BACK, names=("a",))
    assert excinfo.value.kind == "read-your-writes"
    assert str(excinfo.value).startswith(head(MACHINE_NOT_READ_YOUR_WRITES))


@pytest.mark.parametrize("store", [ToyStore, WritesThroughWhileLinked], ids=lambda c: c.__name__)
def test_correct_writers_read_their_writes(store: type[ToyStore]) -> None:
    replay(machine_for(factory_of(store)), READ_BACK, names=("a",))


# -- write-through after a lost link ---------------------------------------------------------

#: Instance 0 loses its link and gets it back, then writes ``a`` and reads it.
OWN_WRITE_AFTER_RECONNECT = [
    Operation("read", {"instance": 0, "name": "a"}),
    Operation("disconnect", {"instance": 0}),
    Operation("reconnect", {"instance": 0}),
    Operation("update", {"instance": 0, "name": "a", "policy": {}, "read_back": False}),
    Operation("read", {"instance": 0, "name": "a"}),
]


def test_a_store_may_serve_what_it_wrote_itself_after_reconnecting() -> None:
    # Write-through: the read is served from its cache, with no storage read.
    # It was reported as "cached across a link loss".
    replay(
        machine_for(factory_of(WritesThroughWhileLinked)), OWN_WRITE_AFTER_RECONNECT, names=("a",)
    )


def test_a_write_through_store_passes_the_default_search() -> None:
    result = check_no_stale_reads(factory_of(WritesThroughWhileLinked), TTL)
    assert result.failures is None
    assert result.scenarios >= DEFAULT_SCENARIOS


@pytest.mark.parametrize(
    ("store", "disabled"),
    [
        (WordsItsOwnMessages, ()),
        (InvalidatesByKeyList, ()),
        # Its listener dies on garbage by design: the search's garbage rule is left out,
        # and nothing else of the harness's reaches it (no marker on its channel).
        (DiesOnUnknownMessages, ("inject_garbage",)),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_stores_with_their_own_message_format_pass_the_search(
    store: type[ToyStore], disabled: tuple[str, ...]
) -> None:
    result = check_no_stale_reads(factory_of(store), TTL, scenarios=60, disabled_rules=disabled)
    assert (result.failures, result.kind) == (None, None)
    assert result.scenarios >= 60


def test_writing_through_while_the_link_is_down_is_still_caught() -> None:
    # Another instance's newer write cannot reach it then: its own copy goes stale.
    steps = [
        Operation("read", {"instance": 0, "name": "a"}),
        Operation("disconnect", {"instance": 0}),
        Operation("update", {"instance": 0, "name": "a", "policy": {}, "read_back": False}),
        Operation("update", {"instance": 1, "name": "a", "policy": {}, "read_back": False}),
        Operation("read", {"instance": 0, "name": "a"}),
    ]
    with pytest.raises(InvalidationError) as excinfo:
        replay(machine_for(factory_of(WritesThrough)), steps, names=("a",))
    assert excinfo.value.kind == "stale"


# -- the machine's waits are public ------------------------------------------------------------

LINK_LOSS = [
    Operation("read", {"instance": 1, "name": "a"}),
    Operation("disconnect", {"instance": 1}),
    Operation("reconnect", {"instance": 1}),
    Operation("read", {"instance": 1, "name": "a"}),
]


def test_a_store_that_backs_off_is_checked_with_a_longer_reconnect_wait() -> None:
    machine = machine_for(factory_of(BacksOffBeforeResubscribing), reconnect_timeout=5.0)
    replay(machine, LINK_LOSS, names=("a",))


def test_a_reconnect_wait_too_short_for_the_backoff_says_which_wait() -> None:
    machine = machine_for(factory_of(BacksOffBeforeResubscribing), reconnect_timeout=0.05)
    with pytest.raises(InvalidationError) as excinfo:
        replay(machine, LINK_LOSS, names=("a",))
    assert excinfo.value.kind == "unsettled"
    assert "did not settle within 0.05s after state.disconnect(instance=1)" in str(excinfo.value)
    assert MACHINE_RECONNECT_HINT.strip() in str(excinfo.value)


@pytest.mark.parametrize("name", ["settle_timeout", "reconnect_timeout", "step_timeout"])
def test_a_wait_must_be_positive(name: str) -> None:
    options: dict[str, Any] = {name: 0.0}
    with pytest.raises(ValueError, match=f"{name} must be a finite number of seconds > 0"):
        machine_for(factory_of(ToyStore), **options)


# -- no verdict is an error with its cause; a stuck store is a verdict saying so ---------------


@pytest.mark.parametrize(
    ("store", "options", "cause"),
    [
        pytest.param(
            RaisesInFactory,
            {},
            "the store factory raised RuntimeError: cannot build a store",
            id="factory-raises",
        ),
        pytest.param(
            RaisesOnInitialize,
            {},
            "instance 0: initialize() raised ConnectionError",
            id="initialize-raises",
        ),
        pytest.param(
            HangsOnInitialize,
            {"step_timeout": 0.5},
            "setting up the stores did not finish within 0.5s: instance 0: initialize() did not "
            "return",
            id="initialize-hangs",
        ),
        pytest.param(
            NeverReads,
            {"settle_timeout": 0.3},
            "the stores did not settle after initialize(): instance 0 did not settle within 0.3s",
            id="never-settles",
        ),
    ],
)
def test_a_search_that_cannot_run_raises_its_cause(
    store: type[ToyStore], options: dict[str, Any], cause: str
) -> None:
    with pytest.raises(CouldNotRun) as excinfo:
        check_no_stale_reads(factory_of(store), TTL, **options)
    assert cause in str(excinfo.value)
    assert "stale read" not in str(excinfo.value)


def test_a_listener_that_stops_is_a_verdict_naming_what_did_not_happen() -> None:
    result = check_no_stale_reads(factory_of(StallsOnGarbage), TTL, settle_timeout=0.3)
    assert result.kind == "unsettled"
    assert result.failures is not None
    assert "did not settle within 0.3s after state.inject_garbage(" in result.failures
    assert "its listener" in result.failures


# -- in the acceptance run ---------------------------------------------------------------------


def _run_alone(pytester: pytest.Pytester, builder: Any, *options: str) -> tuple[str, str, str]:
    """``P1-2.no-stale-reads`` alone against ``builder``'s target: outcome, summary, message."""
    run_p1(pytester, REPORT, "-k", "no-stale-reads", *options, target=builder)
    report = read_report(pytester.path / "p1.json")
    (criterion,) = report["criteria"]
    assert criterion["id"] == SLOW_ID
    return criterion["outcome"], criterion["summary"], criterion["message"]


@pytest.mark.parametrize(
    ("builder", "options", "cause"),
    [
        pytest.param(
            broken_stateful.store_factory_that_raises,
            (),
            "CouldNotRun: the store factory raised RuntimeError",
            id="factory-raises",
        ),
        pytest.param(
            broken_stateful.store_whose_initialize_raises,
            (),
            "CouldNotRun: instance 0: initialize() raised ConnectionError",
            id="initialize-raises",
        ),
        pytest.param(
            broken_stateful.store_whose_initialize_hangs,
            ("--p1-timeout=1s",),
            "CouldNotRun: setting up the stores did not finish within 1s",
            id="initialize-hangs",
        ),
        pytest.param(
            broken_stateful.store_that_never_reads_its_subscription,
            (),
            "CouldNotRun: the stores did not settle after initialize()",
            id="never-settles",
        ),
    ],
)
def test_no_verdict_is_an_error_with_its_cause(
    pytester: pytest.Pytester, builder: Any, options: tuple[str, ...], cause: str
) -> None:
    outcome, summary, message = _run_alone(pytester, builder, *options)
    assert outcome == "error"
    assert cause in message
    assert "stale read" not in message + summary


def test_a_store_that_stops_reacting_fails_saying_so(pytester: pytest.Pytester) -> None:
    outcome, summary, message = _run_alone(
        pytester, broken_stateful.store_whose_listener_stalls_on_garbage
    )
    assert outcome == "failed"
    assert P1_2_SEARCH_FOUND["unsettled"] in summary
    assert "did not settle within 5s after state.inject_garbage(" in message
    assert "stale read" not in summary


def test_a_write_through_store_passes_in_the_acceptance_run(pytester: pytest.Pytester) -> None:
    outcome, summary, _ = _run_alone(pytester, broken_stateful.toy_store_writing_through)
    assert outcome == "passed"
    assert f"no stale read in {DEFAULT_SCENARIOS}" in summary or "no stale read in" in summary


PUBLISHES_FIRST = Break(
    SLOW_ID,
    broken_stateful.store_publishing_before_storing,
    found=(
        "the property-based search found a stale read:",
        P1_2_SEARCH_FOUND["stale"],
        "state.split_update(",
    ),
    fix="store a new value before publishing its invalidation",
    claim="no stale read",
    # The deterministic probe of the same promise fails too.
    collateral=frozenset({"P1-2.write-then-invalidate"}),
)


@pytest.mark.slow
def test_publishing_before_storing_fails_the_search(pytester: pytest.Pytester) -> None:
    assert_breaks_exactly(pytester, PUBLISHES_FIRST)


# -- the option ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--p1-scenarios=0"],
            "",
            "ERROR: --p1-scenarios: expected an integer >= 1, got '0'",
        ),
        (
            ["--p1-scenarios=many"],
            "",
            "ERROR: --p1-scenarios: expected an integer >= 1, got 'many'",
        ),
        (
            [],
            "p1_scenarios = -3",
            "ERROR: p1_scenarios (ini): expected an integer >= 1, got -3",
        ),
        (
            [],
            "p1_scenarios = lots",
            "ERROR: p1_scenarios (ini): expected an integer >= 1 (invalid literal for int()*'lots')",
        ),
    ],
    ids=["zero", "word", "ini-negative", "ini-word"],
)
def test_a_bad_scenario_count_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message.replace("[", "[[]")])


def test_the_scenario_count_reaches_the_search_and_the_report(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\np1_scenarios = 9\n")
    result = run_p1(pytester, REPORT, "-k", "no-stale-reads")
    result.stdout.fnmatch_lines(["quantum-p1: *scenarios=9*"])
    (criterion,) = read_report(pytester.path / "p1.json")["criteria"]
    assert criterion["outcome"] == "passed"
    figures = criterion["figures"]
    assert figures["min_scenarios"] == 9
    assert figures["scenarios"] >= 9
    assert figures["seed"] == 0
    assert figures["scenarios_per_s"] > 0
    assert (
        criterion["summary"]
        == f"no stale read in {figures['scenarios']} generated scenarios (seed 0)"
    )
