"""Secrets out of what a run writes: every text inside a pytest report, with each secret masked.

The Redis URL travels as a :class:`~pytest_quantum_p1._redis.server.RedisURL`,
whose ``repr`` is redacted; but a traceback with ``-l`` shows every local of
every frame, redis-py's own included (its ``auth_args``), and a target may put
the URL in a message of its own. So the plugin also masks the run's secrets
in each report before anything (terminal, JUnit XML, pytest-xdist, the JSON
and HTML reports) reads it: :func:`scrub` walks the report's texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pytest

__all__ = ["MASK", "InternalErrorMask", "scrub", "scrub_report"]

MASK: Final = "***"
#: Nesting followed at most: report objects are a few levels deep.
_DEPTH: Final = 12
#: The attributes of a test or collect report that hold texts a run writes.
_REPORT_TEXTS: Final = ("longrepr", "sections", "user_properties", "p1_record")
#: Where pytest's failure representations live: the only objects walked into
#: (a report also refers to collected nodes, and through them to the whole run).
_REPR_MODULES: Final = ("_pytest._code", "_pytest.reports")


def scrub_report(report: object, secrets: Sequence[str]) -> None:
    """Mask each secret in the texts of a pytest report (its failure, captured output,
    properties and acceptance record), in place."""
    for name in _REPORT_TEXTS:
        current = getattr(report, name, None)
        if current is not None:
            setattr(report, name, scrub(current, secrets))


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` with every occurrence of each secret masked, in every text it holds.

    Strings, tuples and dicts are rebuilt; lists and pytest's failure
    representations are changed in place and returned; other objects are
    left alone. Nothing is done without secrets.
    """
    ordered = sorted((s for s in secrets if s), key=len, reverse=True)
    if not ordered:
        return value
    return _scrub(value, ordered, set(), 0)


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _scrub(value: Any, secrets: Sequence[str], seen: set[int], depth: int) -> Any:
    if isinstance(value, str):
        return _mask(value, secrets)
    if value is None or isinstance(value, int | float | bytes) or depth > _DEPTH:
        return value
    if id(value) in seen:
        return value
    seen.add(id(value))
    if isinstance(value, tuple):
        items = tuple(_scrub(item, secrets, seen, depth + 1) for item in value)
        if hasattr(value, "_fields"):  # a named tuple
            return type(value)(*items)
        return items
    if isinstance(value, list):
        value[:] = [_scrub(item, secrets, seen, depth + 1) for item in value]
        return value
    if isinstance(value, dict):
        return {
            _scrub(key, secrets, seen, depth + 1): _scrub(item, secrets, seen, depth + 1)
            for key, item in value.items()
        }
    if not type(value).__module__.startswith(_REPR_MODULES):
        return value
    for name in _attributes(value):
        try:
            current = getattr(value, name)
        except AttributeError:
            continue
        if callable(current) and not isinstance(current, str):
            continue
        cleaned = _scrub(current, secrets, seen, depth + 1)
        if cleaned is not current:
            try:
                object.__setattr__(value, name, cleaned)
            except (AttributeError, TypeError):  # read-only: leave it
                continue
    return value


def _attributes(value: Any) -> list[str]:
    names = list(getattr(value, "__dict__", {}))
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    return [name for name in names if not name.startswith("__")]


class InternalErrorMask:
    """A plugin object masking the secrets in an INTERNALERROR before the terminal prints it."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = tuple(secrets)

    @pytest.hookimpl(tryfirst=True)
    def pytest_internalerror(self, excrepr: object, excinfo: object) -> None:
        """Mask the secrets in ``excrepr`` in place; the terminal reporter prints it next."""
        scrub(excrepr, self.secrets)
