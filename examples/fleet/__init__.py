"""fleet: a small event-driven trading backend (a worked example for pytest-quantum-p1).

Written in its own style, not after ``reference_impl``: a pyee event bus whose
handlers get only the payload, a synchronous mode service, monitoring as one
JSON line per event, a policy cache that builds its own Redis client from a
URL, and the deprecated federation v2 under ``fleet/legacy/fedv2``.

Map:
  events.py            the bus (pyee), the event names it knows, ``get_bus()``
  monitor.py           one JSON line per monitored event on ``fleet.monitor``
  ops/modes.py         ``ModeService.set_mode`` (synchronous) -> ai.hfos.mode_changed
  safety/governor.py   ``Governor.set_level`` -> safety.governor.level_changed
  models/shadow.py     ``ShadowRunner.complete`` -> model.shadow_test.completed
  cache/policies.py    ``PolicyCache(url)``: TTL cache, invalidated over pub/sub
  legacy/fedv2/        deprecated v2 engine (kept for the bridge) -> federation.node.status_changed
  federation/          ``v3.py`` (primary), ``bridge.py`` (the only user of v2)
  net/heartbeat.py     live liveness pings (unrelated to the removed v2 heartbeat)
  health.py            readiness report
  docs/                architecture notes
"""
