"""The acceptance run on a Redis Cluster (``--p1-redis=cluster``): the cluster criteria's verdicts.

The reference passes every criterion there, the cluster's three included; a
store pinned to the channel's slot owner and one ignoring the lost-link rule
each fail ``P1-2.cluster-node-loss`` with the message users read; on a single
Redis the cluster criteria are not collected.
"""

from __future__ import annotations

import pytest

from pytest_quantum_p1._messages import ACCEPTANCE_CRITERION_TITLES
from tests.cluster import broken_cluster as bc
from tests.plugin.broken_targets import Builder, Checklist, read_report, run_p1

pytestmark = pytest.mark.real_redis

CLUSTER_IDS = ["P1-2.cluster-shards", "P1-2.cluster-failover", "P1-2.cluster-node-loss"]


def _outcomes(pytester: pytest.Pytester) -> dict[str, dict[str, str]]:
    report = read_report(pytester.path / "p1.json")
    return {criterion["id"]: criterion for criterion in report["criteria"]}


def test_the_reference_passes_every_criterion_on_a_cluster(pytester: pytest.Pytester) -> None:
    """The whole acceptance run, as the README gives it, with ``--p1-redis=cluster``."""
    result = run_p1(pytester, "--p1-redis=cluster", "--p1-report=p1.json")
    found = _outcomes(pytester)
    assert len(found) == 29  # the 26 of a single Redis, and the cluster's three
    assert {name: c["outcome"] for name, c in found.items()} == dict.fromkeys(found, "passed")
    assert set(CLUSTER_IDS) <= set(found)
    lines = Checklist.parse(result.outlines).lines
    assert "keys on 3 of 3 masters" in lines["P1-2.cluster-shards"].detail
    assert "3 failovers" in lines["P1-2.cluster-failover"].detail
    shards = found["P1-2.cluster-shards"]
    assert float(shards["figures"]["propagation_p99_ms"]) > 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("builder", "phrases"),
    [
        (
            bc.store_pinned_to_the_slot_owner,
            ("which held the subscriptions, was killed, not every instance was subscribed again",),
        ),
        (
            bc.store_ignoring_the_lost_link_rule,
            ("served their cached copy after node", "the cache must be dropped on a lost link"),
        ),
    ],
    ids=["pinned-to-the-slot-owner", "ignoring-the-lost-link-rule"],
)
def test_a_store_broken_for_the_cluster_fails_the_node_loss_criterion(
    pytester: pytest.Pytester, builder: Builder, phrases: tuple[str, ...]
) -> None:
    result = run_p1(
        pytester,
        "--p1-redis=cluster",
        "--p1-report=p1.json",
        "-k",
        "cluster-node-loss",
        target=builder,
    )
    node_loss = _outcomes(pytester)["P1-2.cluster-node-loss"]
    assert node_loss["outcome"] == "failed"
    for phrase in phrases:
        assert phrase in node_loss["message"]
    assert "refresh the cluster topology and subscribe on any node" in node_loss["message"]
    line = Checklist.parse(result.outlines).lines["P1-2.cluster-node-loss"]
    assert line.mark == "FAIL"


def test_on_a_single_redis_the_cluster_criteria_are_not_collected(
    pytester: pytest.Pytester,
) -> None:
    run_p1(pytester, "--p1-report=p1.json", "-k", "P1-2.ttl or cluster")
    assert list(_outcomes(pytester)) == ["P1-2.ttl"]
    assert all(name in ACCEPTANCE_CRITERION_TITLES for name in CLUSTER_IDS)
