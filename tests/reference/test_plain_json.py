"""Plain JSON: one rule set, so the bus and the store accept and refuse alike."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_impl.core.event_bus import EventBus, check_payload
from reference_impl.core.plain_json import MAX_DEPTH, is_plain, json_problem
from reference_impl.errors import InvalidPayloadError, InvalidPolicyError
from reference_impl.services import policy_store_v2

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=3) | st.integers() | st.booleans(), inner, max_size=3)
    ),
    max_leaves=12,
)
_MAPPINGS = st.dictionaries(st.text(max_size=3) | st.integers(), _JSONISH, max_size=4)


def _as_decoded(value: Any) -> Any:
    """``value`` as JSON gives it back: tuples become lists."""
    if isinstance(value, Mapping):
        return {key: _as_decoded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_decoded(item) for item in value]
    return value


@given(_JSONISH)
def test_the_fast_check_agrees_with_the_explaining_one(value: Any) -> None:
    # Dicts, lists, tuples and exact scalars are all is_plain can say yes to;
    # on those it must say exactly what json_problem says.
    assert is_plain(value) == (json_problem(value, "v") is None)


@given(_MAPPINGS)
def test_bus_and_store_refuse_the_same_values_with_the_same_words(policy: dict[Any, Any]) -> None:
    problem = json_problem(policy, "X")
    if problem is None:
        # The store's fast and explained paths write the value itself.
        for stored in (policy, MappingProxyType(policy)):
            assert json.loads(policy_store_v2._encode("risk", stored)) == _as_decoded(policy)
        assert check_payload("model.promoted", policy) == policy
        return
    detail = re.escape(problem.removeprefix("X"))
    with pytest.raises(InvalidPolicyError, match=f"^policy 'risk'{detail}$"):
        policy_store_v2._encode("risk", policy)
    with pytest.raises(InvalidPayloadError, match=f"^payload of 'model\\.promoted'{detail}$"):
        check_payload("model.promoted", policy)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param({"a": {1, 2}}, "P.a is a set, which is not JSON-serialisable", id="set"),
        pytest.param({"a": [1, b"x"]}, "P.a[1] is a bytes, which is not JSON", id="bytes"),
        pytest.param({"a": math.nan}, "P.a is nan, which JSON cannot represent", id="nan"),
        pytest.param([-math.inf], "P[0] is -inf, which JSON cannot represent", id="-inf"),
        pytest.param({"a": {2: 0}}, "P.a has the key 2, which is not a str", id="int-key"),
        pytest.param(_nested(MAX_DEPTH + 1), "is nested deeper than 64 levels", id="deep"),
    ],
)
def test_a_problem_names_its_place(value: object, message: str) -> None:
    problem = json_problem(value, "P")
    assert problem is not None
    assert message in problem


def test_the_depth_limit_is_exact() -> None:
    assert json_problem(_nested(MAX_DEPTH), "P") is None
    assert json_problem(_nested(MAX_DEPTH + 1), "P") is not None


def test_a_cycle_is_refused_by_both() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidPolicyError, match="nested deeper than 64 levels"):
        policy_store_v2._encode("risk", {"loop": loop})
    with pytest.raises(InvalidPayloadError, match="nested deeper than 64 levels"):
        asyncio.run(EventBus().publish("model.promoted", {"loop": loop}))
