"""Federation v3: federated training rounds announced on the EventBus.

v3 is the primary federation. A round is started with its participants and
completed with its metrics; both are published (``federation.round.started``,
``federation.round.completed``) and anything else, including the v2 bridge,
follows along by subscribing. Nothing here knows v2 exists.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

from reference_impl.core.event_bus import EventBus, get_event_bus
from reference_impl.errors import FederationRoundError

__all__ = ["ROUND_COMPLETED", "ROUND_STARTED", "FederationRoundError", "FederationV3"]

logger = logging.getLogger(__name__)

ROUND_STARTED: Final = "federation.round.started"
ROUND_COMPLETED: Final = "federation.round.completed"


def _check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FederationRoundError(f"{kind} must be a non-empty str, got {value!r}")
    return value


class FederationV3:
    """Runs federated rounds and publishes their start and completion."""

    def __init__(self, bus: EventBus | None = None) -> None:
        self._bus = get_event_bus() if bus is None else bus
        self._active: dict[str, tuple[str, ...]] = {}

    @property
    def active_rounds(self) -> Mapping[str, tuple[str, ...]]:
        """Participants of each started, not yet completed round, by round id."""
        return dict(self._active)

    async def start_round(self, round_id: str, participants: Iterable[str]) -> None:
        """Start ``round_id`` with ``participants`` and publish ``federation.round.started``.

        Raises :class:`FederationRoundError` for an empty or duplicate
        participant list, a bad id, or a round that is already active.
        """
        round_id = _check_id("round_id", round_id)
        if isinstance(participants, str) or not isinstance(participants, Iterable):
            raise FederationRoundError(
                f"participants must be a collection of node ids, got {participants!r}"
            )
        members = tuple(_check_id("participant", p) for p in participants)
        if not members:
            raise FederationRoundError(f"round {round_id!r} needs at least one participant")
        if len(set(members)) != len(members):
            raise FederationRoundError(f"round {round_id!r} lists a participant twice")
        if round_id in self._active:
            raise FederationRoundError(f"round {round_id!r} is already running")
        self._active[round_id] = members
        await self._bus.publish(
            ROUND_STARTED,
            {
                "round_id": round_id,
                "participants": list(members),
                "timestamp": datetime.now(UTC).isoformat(),
            },
        )
        logger.info("Federation v3 round %s started with %d participant(s)", round_id, len(members))

    async def complete_round(self, round_id: str, metrics: Mapping[str, float]) -> None:
        """Complete ``round_id`` and publish ``federation.round.completed`` with ``metrics``.

        Raises :class:`FederationRoundError` for a round that is not running
        or metrics that are not finite numbers keyed by name.
        """
        round_id = _check_id("round_id", round_id)
        if not isinstance(metrics, Mapping):
            raise FederationRoundError(f"metrics must be a mapping, got {metrics!r}")
        checked: dict[str, float] = {}
        for name, value in metrics.items():
            if (
                not isinstance(name, str)
                or isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise FederationRoundError(
                    f"metric {name!r} of round {round_id!r} must be a finite number, got {value!r}"
                )
            checked[name] = value
        try:
            members = self._active.pop(round_id)
        except KeyError:
            raise FederationRoundError(f"round {round_id!r} is not running") from None
        await self._bus.publish(
            ROUND_COMPLETED,
            {
                "round_id": round_id,
                "participants": list(members),
                "metrics": checked,
                "timestamp": datetime.now(UTC).isoformat(),
            },
        )
        logger.info("Federation v3 round %s completed", round_id)
