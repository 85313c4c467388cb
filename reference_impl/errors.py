"""Typed errors of the reference backend.

Every error a caller can provoke with bad input is one of these, so callers can
catch precisely and messages stay consistent. Each subclasses the built-in
error a Python user would expect (``ValueError`` for a bad value, ``TypeError``
for a bad type, ``KeyError`` for a missing name).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class P1Error(Exception):
    """Base class of every error the reference backend raises on purpose."""


def closest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``name``, best first (for "did you mean")."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=0.5)


class UnknownEventError(P1Error, KeyError):
    """An event name that is not in the bus catalogue."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.suggestions = closest(name, known)
        hint = (
            f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
            if self.suggestions
            else ""
        )
        self.message = f"unknown event {name!r}{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        return self.message


class InvalidPayloadError(P1Error, TypeError):
    """An event payload that is not a JSON-serialisable mapping."""


class InvalidPolicyError(InvalidPayloadError):
    """A policy that is not a JSON-serialisable mapping with str keys."""


class InvalidSubscriberError(P1Error, TypeError):
    """A subscriber that cannot be called, refused at ``subscribe``."""


class InvalidPolicyNameError(P1Error, ValueError):
    """A policy name that is empty, over-long or path-like."""


class PolicyNotFoundError(P1Error, KeyError):
    """No policy is stored under that name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"no policy named {self.name!r}"


class PolicyDecodeError(P1Error, ValueError):
    """The stored bytes of a policy are not a JSON object that a write would accept."""


class PolicyTooLargeError(P1Error, ValueError):
    """A policy whose JSON is over the store's ``max_policy_bytes``, written or read."""


class StoreUnavailableError(P1Error, ConnectionError):
    """Redis cannot be reached or did not answer in time; nothing stale was served."""


class InvalidModeError(P1Error, ValueError):
    """A HedgeFundOS mode that does not exist."""


class InvalidSafetyLevelError(P1Error, ValueError):
    """A safety level outside the governor's range."""


class InvalidReasonError(P1Error, ValueError):
    """A safety level change whose reason is not a non-empty string."""


class InvalidShadowTestError(P1Error, ValueError):
    """Shadow test input that cannot be compared (empty, mismatched, non-numeric)."""


class FederationV2Error(P1Error, ValueError):
    """Bad input to the v2 engine."""


class InvalidNodeError(FederationV2Error):
    """A v2 node id or transport that cannot be registered."""


class InvalidNodeStatusError(FederationV2Error):
    """A node status the v2 engine does not know (see its NODE_STATUSES)."""


class FederationRoundError(P1Error, ValueError):
    """A round id, participant list or metric that is invalid, or a round in the wrong state."""
