"""P1-2 bugs that used to pass (issue 12 §5) and mislabelled verdicts (§3), each caught by its criterion.

Each :class:`Break` runs the whole acceptance run against the reference with
one bug planted (``broken_p1_2.py``) and asserts that exactly its criterion
fails, with the message a user reads. The tests after them pin the §3
verdicts (a failure, not an error; advice only where the evidence supports
it) and run correct stores of other shapes (write-through, a writer waiting
for its own invalidation, an early and a late publish, invalidations in a
format of their own, copies on read, counters under other names) through the
criteria that could wrongly reject them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest

from pytest_quantum_p1._harness.observed import ObservedRedis
from tests.plugin import broken_p1_2 as bp
from tests.plugin.broken_targets import Builder, Checklist, read_report, run_p1
from tests.plugin.verdicts import REPORT, Break, assert_breaks_exactly

#: The P1-2 criteria the fast runs check (the stale-read search is another test's).
P1_2_IDS = [
    "P1-2.cached-read",
    "P1-2.cold-vs-warm",
    "P1-2.no-reparse",
    "P1-2.hit-rate",
    "P1-2.counters",
    "P1-2.ttl",
    "P1-2.invalidation",
    "P1-2.read-your-writes",
    "P1-2.write-then-invalidate",
    "P1-2.link-recovery",
    "P1-2.garbage-messages",
]

BREAKS = [
    Break(
        "P1-2.read-your-writes",
        bp.writer_keeping_its_old_value,
        (
            "instance 0 served {'v': 0} right after its own update_policy(",
            "the writer kept its old value.",
            "Its own invalidation was held back until after this read",
        ),
        "drop (or replace) the writer's own cached entry before returning",
        claim="as soon as update_policy returned",
    ),
    Break(
        "P1-2.write-then-invalidate",
        bp.store_publishing_before_it_writes,
        (
            "the invalidation went out before the new value was stored:",
            "read storage, got the old value {'v': 1}, and still served it",
            "instance 1 read {'v': 1} with 1 storage read(s). Expected: {'v': 2}.",
        ),
        "Store the new value first, then publish the invalidation",
        claim="instance 1 read the new value",
    ),
    Break(
        "P1-2.link-recovery",
        bp.listener_stopping_after_a_lost_link,
        ("after its invalidation link was cut, instance 1 did not subscribe again within 5 s",),
        "subscribe again (retrying with backoff)",
        # On the wire the link is a real TCP connection, and redis-py's own
        # pubsub reconnects and resubscribes it; the store, its link marked
        # down for good, still never caches again.
        wire_found=("after resubscribing, instance 1 no longer caches",),
    ),
    Break(
        "P1-2.garbage-messages",
        bp.listener_dying_on_garbage,
        (
            "instance 1's listener stopped at a garbage message on the invalidation channel, "
            "not UTF-8 (11 bytes)",
            "Injected on instance 1, in this order: not UTF-8, empty, huge (1 MiB)",
        ),
        "one bad message must not end the listener",
        # The wire shows each message forwarded, not which one the listener died on.
        wire_found=(
            "after the garbage messages, instance 1 served {'v': 2} instead of {'v': 3}",
            "Injected on instance 1, in this order: not UTF-8, empty, huge (1 MiB)",
        ),
        claim="the listener survived",
    ),
    Break(
        "P1-2.no-reparse",
        bp.store_decoding_json_on_every_hit,
        (
            "a cached read costs more the larger the policy:",
            "The hit path parses (or deep-copies) the stored policy on every read.",
            "decoding the large policy's JSON once, here: ",
        ),
        "parse once per miss, never per hit",
    ),
    Break(
        "P1-2.counters",
        bp.store_whose_counters_flatter,
        (
            "the store's own counters disagree with what the harness counted over 400 reads: "
            "the store says 396 hits and 4 misses",
            "Workload: 4 policies read in turn on one instance",
        ),
        "Count a hit only for a read served from the cache",
    ),
    Break(
        "P1-2.invalidation",
        bp.store_comparing_bytes_with_str_names,
        (
            "not every instance converged.",
            "received and processed the invalidation of",
            "yet kept its old value: its handler did not drop the entry.",
        ),
        "while the client delivers bytes (decode_responses=False)",
    ),
]


#: The two ways the harness observes a store: the client it hands the store
#: (client form), or the wire between the store's own client and Redis (URL
#: form). The same stores must get the same verdicts on both.
PATHS = [pytest.param(False, id="client"), pytest.param(True, id="wire")]


@pytest.mark.parametrize("wire", PATHS)
@pytest.mark.parametrize("case", BREAKS, ids=lambda case: case.builder.__name__)
def test_a_p1_2_bug_fails_exactly_its_criterion(
    pytester: pytest.Pytester, case: Break, wire: bool
) -> None:
    assert_breaks_exactly(pytester, case, wire=wire)


def test_every_new_p1_2_criterion_has_a_planted_bug() -> None:
    new = set(P1_2_IDS) - {"P1-2.cached-read", "P1-2.cold-vs-warm", "P1-2.hit-rate", "P1-2.ttl"}
    assert new <= {case.criterion for case in BREAKS}


def _run(
    pytester: pytest.Pytester, builder: Builder, selection: str, *, wire: bool = False
) -> dict[str, dict[str, str]]:
    """Run the criteria ``-k selection`` against ``builder``'s target; their JSON records by id."""
    run_p1(pytester, REPORT, "-k", selection, target=builder, wire=wire)
    report = read_report(pytester.path / "p1.json")
    return {criterion["id"]: criterion for criterion in report["criteria"]}


# -- §3: failed, not error; advice only where the evidence supports it ----------------------


def test_invalidation_advice_follows_what_the_instances_received(
    pytester: pytest.Pytester,
) -> None:
    """A store that receives and processes every message is not told to subscribe."""
    found = _run(pytester, bp.store_comparing_bytes_with_str_names, "P1-2.invalidation")
    message = found["P1-2.invalidation"]["message"]
    assert "Subscribe every instance" not in message
    assert "Publish the policy's name" not in message
    assert "decode the message data before looking the name up" in message


def test_a_store_that_never_publishes_fails_the_latency_and_ttl_criteria_with_what_was_awaited(
    pytester: pytest.Pytester,
) -> None:
    found = _run(
        pytester,
        bp.toy_never_publishing,
        "cached-read or cold-vs-warm or P1-2.ttl or P1-2.invalidation",
    )
    assert {name: c["outcome"] for name, c in found.items()} == {
        "P1-2.cached-read": "failed",
        "P1-2.cold-vs-warm": "failed",
        "P1-2.ttl": "failed",
        "P1-2.invalidation": "failed",
    }
    for name in ("P1-2.cached-read", "P1-2.cold-vs-warm"):
        message = found[name]["message"]
        assert (
            "the store's own listener processed no message on 'policy:invalidate' within 5 s"
            in (message)
        )
        assert "TimeoutError" not in message
    assert "instance 1 received no invalidation for 'p1-ttl-" in found["P1-2.ttl"]["message"]
    invalidation = found["P1-2.invalidation"]["message"]
    assert "processed no invalidation of 'p1-inv-" in invalidation
    assert "Publish the policy's name on 'policy:invalidate' on every update" in invalidation
    assert "bytes" not in invalidation  # nothing was processed: no advice about handlers


def test_a_wrong_value_on_the_ttl_check_is_a_failure_not_an_error(
    pytester: pytest.Pytester,
) -> None:
    found = _run(pytester, bp.store_serving_extra_fields, "P1-2.ttl")
    ttl = found["P1-2.ttl"]
    assert ttl["outcome"] == "failed"
    assert ttl["message"].startswith(
        "right after the update on instance 0 settled, instance 1 served "
        "{'v': 1, 'served_by': 'cache'}"
    )
    assert "AssertionError" not in ttl["message"]


# -- correct stores of other shapes pass ---------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "selection"),
    [
        (bp.toy_writing_through, "read-your-writes or write-then-invalidate"),
        (bp.toy_awaiting_its_own_invalidation, "read-your-writes"),
        (bp.toy_announcing_before_and_after, "write-then-invalidate"),
        (
            bp.toy_with_its_own_message_format,
            "cached-read or cold-vs-warm or no-reparse or P1-2.invalidation",
        ),
        (
            bp.toy_invalidating_by_key_list,
            "P1-2.invalidation or read-your-writes or write-then-invalidate or link-recovery",
        ),
        (
            bp.toy_dying_on_unknown_messages,
            "P1-2.invalidation or hit-rate or ttl or read-your-writes "
            "or write-then-invalidate or link-recovery",
        ),
        (bp.toy_returning_copies, "no-reparse"),
        (bp.toy_counting_under_other_names, "P1-2.counters"),
        (
            bp.plain_toy,
            "no-reparse or P1-2.invalidation or read-your-writes or write-then-invalidate "
            "or link-recovery or garbage-messages",
        ),
    ],
    ids=lambda value: value.__name__ if callable(value) else "",
)
@pytest.mark.parametrize("wire", PATHS)
def test_a_correct_store_of_another_shape_passes(
    pytester: pytest.Pytester, builder: Builder, selection: str, wire: bool
) -> None:
    found = _run(pytester, builder, selection, wire=wire)
    assert found
    assert {name: c["outcome"] for name, c in found.items()} == dict.fromkeys(found, "passed")


def test_the_write_order_is_probed_where_the_publish_is_a_command_of_its_own(
    pytester: pytest.Pytester,
) -> None:
    """The toy writes, then publishes: the window after its PUBLISH is probed, and clean."""
    result = run_p1(pytester, "-k", "write-then-invalidate", target=bp.plain_toy)
    line = Checklist.parse(result.outlines).lines["P1-2.write-then-invalidate"]
    assert line.mark == "PASS"
    assert line.detail.startswith("probed between the writer's PUBLISH and its next command")


def test_without_declared_counters_the_check_is_skipped_saying_so(
    pytester: pytest.Pytester,
) -> None:
    found = _run(pytester, bp.plain_toy, "P1-2.counters")
    counters = found["P1-2.counters"]
    assert counters["outcome"] == "skipped"
    assert "declares no hit/miss counters (P1Target.cache_counters)" in str(counters)


# -- the harness's publish gate (what P1-2.write-then-invalidate holds the writer with) -----


@pytest.mark.parametrize("how", ["publish", "execute_command"])
def test_the_publish_gate_holds_the_store_after_its_publish_reached_redis(how: str) -> None:
    async def scenario() -> list[str]:
        server = fakeredis.FakeServer()
        observed = ObservedRedis(fakeredis.FakeAsyncRedis(server=server), label="store")
        control = fakeredis.FakeAsyncRedis(server=server)
        listener = control.pubsub()
        await listener.subscribe("policy:invalidate")
        await listener.get_message(timeout=1)  # the confirmation
        seen: list[str] = []

        async def gate(channel: Any, message: Any, receivers: Any) -> None:
            # The invalidation is out already: a subscriber can read it now.
            got = await listener.get_message(timeout=1)
            seen.append(f"gate {channel} {message} {receivers} {got and got['data']!r}")

        observed.publish_gate = gate
        if how == "publish":
            receivers = await observed.publish("policy:invalidate", "p1")
        else:
            receivers = await observed.execute_command("PUBLISH", "policy:invalidate", "p1")
        seen.append(f"returned {receivers}")
        await listener.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        await control.aclose()
        await observed.aclose()
        return seen

    assert asyncio.run(scenario()) == ["gate policy:invalidate p1 1 b'p1'", "returned 1"]
