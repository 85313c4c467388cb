"""What the machine draws: policy names, policies, garbage payloads, clock steps, fetch delays.

One definition each for :class:`~pytest_quantum_p1._stateful.machine.InvalidationMachine`
and :func:`~pytest_quantum_p1._stateful.steps.operations`, so a pinned sequence draws
what the machine would.

The machine draws names and policies from small fixed pools
(:func:`name_sets`, :func:`policy_samples`): which value a store serves, not
what it looks like, is what a stale read is about, and drawing from a pool
costs almost nothing where a regex or a recursive JSON strategy cost more than
the step itself. :func:`policy_names` and :func:`policies` draw the whole
space, for a team's own tests of what a store does with a name or a policy.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any, Final

from hypothesis import strategies as st

from pytest_quantum_p1._stateful.model import VERSION_KEY

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "DEFAULT_TTL",
    "MACHINE_NAMES",
    "SAMPLE_POLICIES",
    "clock_seconds",
    "garbage",
    "in_flight_seconds",
    "name_sets",
    "policies",
    "policy_names",
    "policy_samples",
]

#: The seed's TTL (``self._cache_ttl = 10``).
DEFAULT_TTL: Final = 10.0

_NAME_PATTERN: Final = r"[a-z][a-z0-9_-]{0,15}"
_KEY_ALPHABET: Final = string.ascii_lowercase + string.digits + "_"

#: The names the machine's policies take: 1-3 per scenario, so operations collide on them.
MACHINE_NAMES: Final = ("a", "b", "c")

#: What the machine's updates write (with ``"v"`` added): JSON of every kind a
#: store must give back as written (nesting, unicode, a line separator, floats,
#: integers past 32 bits, null, an empty object).
SAMPLE_POLICIES: Final[tuple[dict[str, Any], ...]] = (
    {},
    {"max": 10},
    {"mode": "shadow", "limits": {"rps": 250, "burst": 1.5}},
    {"allow": ["x", "y"], "note": "caf\u00e9 \u2713 \u2028 end"},
    {"none": None, "flag": True, "big": 2**53, "neg": -0.25},
    {"deep": {"a": {"b": {"c": [1, [2, {}]]}}}},
)


def policy_names() -> SearchStrategy[str]:
    """Policy names valid for the reference rules: ``[a-z][a-z0-9_-]{0,15}``.

    They shrink towards ``"a"``. The machine draws 1-3 of them per example, so
    that operations collide on the same names.
    """
    return st.from_regex(_NAME_PATTERN, fullmatch=True)


def _json_values() -> SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**53), max_value=2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(_KEY_ALPHABET, max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )


def policies() -> SearchStrategy[dict[str, Any]]:
    """Small JSON objects (str keys, JSON values), without the machine's ``"v"`` key."""
    keys = st.text(_KEY_ALPHABET, min_size=1, max_size=8).filter(lambda k: k != VERSION_KEY)
    return st.dictionaries(keys, _json_values(), max_size=3)


def name_sets() -> SearchStrategy[list[str]]:
    """The names a scenario starts with: the first 1-3 of :data:`MACHINE_NAMES` (shrinks to one)."""
    return st.integers(1, len(MACHINE_NAMES)).map(lambda k: list(MACHINE_NAMES[:k]))


def policy_samples() -> SearchStrategy[dict[str, Any]]:
    """One of :data:`SAMPLE_POLICIES` (shrinks to ``{}``)."""
    return st.sampled_from(SAMPLE_POLICIES)


def garbage() -> SearchStrategy[bytes]:
    """Payloads no invalidation should carry: invalid UTF-8 (half), an empty name, a bad name."""
    return st.sampled_from((b"\xff\xfe", b"\xc3\x28", b"", b"not a policy/name"))


def clock_seconds(ttl: float) -> SearchStrategy[float]:
    """How far ``advance_clock`` moves the clock: a quarter of the TTL up to one and a half."""
    return st.integers(1, 6).map(lambda k: k * ttl / 4)


def in_flight_seconds(ttl: float) -> SearchStrategy[float]:
    """How long a ``slow_fetch``'s storage read is in flight: none, or half the TTL."""
    return st.sampled_from((0.0, ttl / 2))
