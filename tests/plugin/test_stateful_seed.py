"""The state machine catches the seed's own P1-2 code, and the reference passes where it fails.

``tests/seed_port`` holds a faithful port of the seed's ``PolicyStoreV2``
sketch. Each of its bugs is shown twice: found by a search that can reach it
(rules that lead to its other bugs left out, so the shrunk sequence is about
this one), and as the minimal sequence replayed, which the reference store
passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pytest_quantum_p1._messages import (
    MACHINE_CACHED_ACROSS_LINK_LOSS,
    MACHINE_NOT_MONOTONIC,
    MACHINE_NOT_READ_YOUR_WRITES,
    MACHINE_PAST_TTL,
    MACHINE_STALE_READ,
    MACHINE_STEPS,
)
from pytest_quantum_p1._redis.server import RedisServer
from pytest_quantum_p1._stateful import (
    InvalidationError,
    InvalidationMachine,
    Operation,
    machine_for,
    replay,
    seeded_search,
)
from reference_impl.p1_target import TARGET
from tests.plugin.test_stateful import RACE_ONLY
from tests.seed_port.policy_store_seed import seed_store_factory

pytestmark = [
    # The port keeps the seed's datetime.utcnow(), deprecated from Python 3.12.
    pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning"),
]

#: The head of the machine's own listing of an example's steps, ending its message.
STEPS_HEAD = MACHINE_STEPS.split("(", 1)[0].strip()
#: The message heads of the properties a read can break (any of them is a bug found).
EVERY_HEAD = (
    MACHINE_STALE_READ,
    MACHINE_NOT_MONOTONIC,
    MACHINE_NOT_READ_YOUR_WRITES,
    MACHINE_PAST_TTL,
    MACHINE_CACHED_ACROSS_LINK_LOSS,
)

#: Rules that reach the seed's other bugs (or only dilute the search), left
#: out to focus on one bug (RACE_ONLY, from test_stateful, for the fill race).
LISTENER_ONLY = (
    *("slow_fetch", "disconnect", "reconnect", "advance_clock"),
    *("read", "deliver", "drop", "duplicate"),
)

RACE = [
    Operation(
        "slow_fetch",
        {
            "instance": 0,
            "writer": 1,
            "name": "a",
            "in_flight": 0.0,
            "lose": False,
            "read_during": False,
        },
    ),
]
DEAD_LISTENER = [
    Operation("read", {"instance": 1, "name": "a"}),
    Operation("inject_garbage", {"instance": 1, "data": b"\xff\xfe"}),
    Operation("update", {"instance": 0, "name": "a", "policy": {}, "read_back": False}),
    Operation("deliver_all"),
    Operation("read", {"instance": 1, "name": "a"}),
]
WALL_CLOCK_TTL = [
    Operation("read", {"instance": 1, "name": "a"}),
    Operation("update", {"instance": 0, "name": "a", "policy": {}, "read_back": False}),
    Operation("advance_clock", {"seconds": 12.5}),
    Operation("read", {"instance": 1, "name": "a"}),
]
KEPT_ACROSS_DISCONNECT = [
    Operation("read", {"instance": 1, "name": "a"}),
    Operation("disconnect", {"instance": 1}),
    Operation("read", {"instance": 1, "name": "a"}),
]


def seed_machine(disabled: Sequence[str] = (), **config: object) -> type[InvalidationMachine]:
    return machine_for(seed_store_factory, ttl=10.0, disabled_rules=disabled, **config)  # type: ignore[arg-type]


def hunt(
    machine: type[InvalidationMachine], *, examples: int = 200, steps: int = 15, shrink: bool
) -> str:
    """Search with a fixed seed; return the machine's own failure message.

    Shrinking replays hundreds of examples (2-15 s here), so only the ``slow``
    tests shrink; without it the message lists every step of the failing example.
    Hypothesis's notes (its own listing, worded differently across releases)
    are left out: the tests check what the plugin says.
    """
    with pytest.raises(InvalidationError) as excinfo:
        seeded_search(machine, examples=examples, steps=steps, seed=0, shrink=shrink)
    return str(excinfo.value)


def our_steps(text: str) -> list[str]:
    """The machine's own listing of the (shrunk) steps: the message's last lines."""
    listing = text.split(STEPS_HEAD, 1)[1]
    return [line.strip() for line in listing.splitlines()[1:] if line.strip()]


@pytest.fixture(autouse=True)
def _quiet_stores(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR")


# -- found by searching ------------------------------------------------------------------


def test_the_search_finds_the_stale_fill_race() -> None:
    text = hunt(seed_machine(RACE_ONLY, instances=2), shrink=False)
    # The old value it caches is stale, older than what it returned before, or
    # (when the racing update was its own) older than what it wrote itself.
    heads = (MACHINE_STALE_READ, MACHINE_NOT_MONOTONIC, MACHINE_NOT_READ_YOUR_WRITES)
    assert text.startswith(tuple(head.split("{")[0] for head in heads))
    assert any(step.startswith("state.slow_fetch(") for step in our_steps(text))
    assert f"{STEPS_HEAD} (InvalidationMachine[seed_store_factory], 2 instances, TTL 10s):" in text


def test_the_search_finds_the_dead_listener() -> None:
    text = hunt(seed_machine(LISTENER_ONLY, instances=2), examples=300, shrink=False)
    assert text.startswith(MACHINE_STALE_READ.split("{")[0])
    assert "died: UnicodeDecodeError" in text
    assert any(step.startswith("state.inject_garbage(") for step in our_steps(text))


@pytest.mark.slow
def test_the_race_shrinks_to_its_minimal_sequence() -> None:
    text = hunt(seed_machine(RACE_ONLY, instances=2), shrink=True)
    steps = our_steps(text)
    # Create, then race a fill with an invalidation (its closing read fails).
    assert len(steps) <= 3, steps
    assert any(step.startswith("state.slow_fetch(") for step in steps)


@pytest.mark.slow
def test_the_dead_listener_shrinks_to_its_minimal_sequence() -> None:
    text = hunt(seed_machine(LISTENER_ONLY, instances=2), examples=300, shrink=True)
    steps = our_steps(text)
    # Create, garbage, update, deliver, read (a cached read first, or converge).
    assert len(steps) <= 6, steps
    assert any(step.startswith("state.inject_garbage(") for step in steps)
    assert "died: UnicodeDecodeError" in text


@pytest.mark.slow
def test_the_search_with_every_rule_finds_a_bug() -> None:
    text = hunt(seed_machine(), examples=100, steps=30, shrink=True)
    assert len(our_steps(text)) <= 6
    assert text.startswith(tuple(head.split("{")[0] for head in EVERY_HEAD))


@pytest.mark.real_redis
def test_the_search_finds_the_race_on_a_real_server(redis_server: RedisServer) -> None:
    machine = seed_machine(RACE_ONLY, instances=2, redis_url=redis_server.url)
    text = hunt(machine, shrink=False)
    assert any(step.startswith("state.slow_fetch(") for step in our_steps(text))


# -- the minimal sequences, replayed -------------------------------------------------------

SEQUENCES = [
    pytest.param(RACE, "stale", MACHINE_STALE_READ, "", id="stale-fill-race"),
    pytest.param(
        DEAD_LISTENER, "stale", MACHINE_STALE_READ, "died: UnicodeDecodeError", id="dead-listener"
    ),
    pytest.param(WALL_CLOCK_TTL, "ttl", MACHINE_PAST_TTL, "", id="wall-clock-ttl"),
    pytest.param(
        KEPT_ACROSS_DISCONNECT,
        "link-loss",
        MACHINE_CACHED_ACROSS_LINK_LOSS,
        "died: ConnectionError",
        id="cache-kept-across-disconnect",
    ),
]


@pytest.mark.parametrize(("steps", "kind", "template", "evidence"), SEQUENCES)
def test_the_seed_port_fails_the_minimal_sequence(
    steps: list[Operation], kind: str, template: str, evidence: str
) -> None:
    with pytest.raises(InvalidationError) as excinfo:
        replay(seed_machine(), steps, names=("a",))
    assert excinfo.value.kind == kind
    message = str(excinfo.value)
    assert message.startswith(template.split("{")[0])
    assert evidence in message
    assert our_steps(message) == [
        "state.create_policies(names=['a'])",
        *(str(step) for step in steps),
    ]


@pytest.mark.parametrize(("steps", "kind", "template", "evidence"), SEQUENCES)
def test_the_reference_passes_the_same_sequence(
    steps: list[Operation], kind: str, template: str, evidence: str
) -> None:
    replay(machine_for(TARGET), steps, names=("a",))
