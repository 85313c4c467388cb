"""Plain JSON: the one rule set for event payloads and stored policies.

``json.dumps`` alone accepts too much (non-str keys silently become strings,
NaN and infinities become invalid JSON) and too little (any mapping that is not
a dict). Plain JSON here is ``None``, ``bool``, ``str``, an ``int`` of at most
:data:`MAX_INT_DIGITS` digits, a finite ``float``, or a mapping with ``str``
keys, a list or a tuple of plain JSON, nested at most :data:`MAX_DEPTH` levels
deep, so a cycle is refused rather than followed forever. The digit limit is
the lowest ``sys.set_int_max_str_digits`` accepts, so plain JSON converts to
text (and back) under any interpreter setting: ``json.dumps({"x": 10**5000})``
raises a bare ``ValueError`` by default.

:func:`json_problem` explains what breaks the rules; :func:`is_plain` is the
fast yes for the common case, for paths that run on every call.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["INT_BOUND", "MAX_DEPTH", "MAX_INT_DIGITS", "SCALARS", "is_plain", "json_problem"]

MAX_DEPTH: Final = 64
#: The most digits a plain int has: 640, the lowest int_max_str_digits Python allows.
MAX_INT_DIGITS: Final = sys.int_info.str_digits_check_threshold
#: Plain ints are those strictly between ``-INT_BOUND`` and ``INT_BOUND``.
INT_BOUND: Final[int] = 10**MAX_INT_DIGITS
#: Exact types that are plain JSON without a further look. Not float: NaN and
#: infinities are not JSON; not int: a huge one cannot be written as text.
SCALARS: Final = frozenset({str, bool, type(None)})


def json_problem(value: object, where: str, depth: int = 0) -> str | None:
    """What keeps ``value`` from being plain JSON, or ``None`` when nothing does.

    ``where`` names ``value`` in the message (``"policy 'risk'"``); the path
    inside it is appended (``"policy 'risk'.limits[2]"``).
    """
    if depth > MAX_DEPTH:
        return f"{where} is nested deeper than {MAX_DEPTH} levels"
    if value is None or isinstance(value, str | bool):
        return None
    if isinstance(value, int):
        if -INT_BOUND < value < INT_BOUND:
            return None
        return (
            f"{where} is an int of {_digits(value)} digits; plain JSON allows at most"
            f" {MAX_INT_DIGITS}"
        )
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{where} is {value!r}, which JSON cannot represent"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has the key {key!r}, which is not a str"
            # The path is built only for what needs a look: this walks whole payloads.
            if type(item) not in SCALARS and (
                problem := json_problem(item, f"{where}.{key}", depth + 1)
            ):
                return problem
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if type(item) not in SCALARS and (
                problem := json_problem(item, f"{where}[{index}]", depth + 1)
            ):
                return problem
        return None
    return f"{where} is a {type(value).__name__}, which is not JSON-serialisable"


def _digits(value: int) -> int:
    """How many decimal digits ``value`` has, counted without ``str()``, which refuses it."""
    magnitude = abs(value)
    # A lower bound from the bit length, off by at most one.
    digits = max(1, math.floor((magnitude.bit_length() - 1) * math.log10(2)) + 1)
    return digits + 1 if magnitude >= 10**digits else digits


def is_plain(value: object, depth: int = 0) -> bool:
    """Whether ``value`` is plain JSON made only of dicts, lists, tuples and exact scalars.

    ``True`` means :func:`json_problem` finds nothing; ``False`` only means "ask
    it" (a mapping that is not a dict, or a subclass, may be fine). Scalars are
    tested inline rather than by a call: the update path is measured against a
    bare PUBLISH, so its microseconds count.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int and isinstance(value, int):  # the isinstance is for the type checker
        return -INT_BOUND < value < INT_BOUND
    if kind is float and isinstance(value, float):
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if type(value) is dict:
        items: Iterable[object] = value.values()
        for key in value:
            if type(key) is not str:
                return False
    elif type(value) is list or type(value) is tuple:
        items = value
    else:
        return False
    for item in items:
        kind = type(item)
        if not (kind is str or kind is bool or item is None) and not is_plain(item, depth + 1):
            return False
    return True
