"""The wire observer: a store's own Redis connections, seen and steered between it and Redis.

- :mod:`.resp`: an incremental RESP2/RESP3 parser that keeps each frame's exact bytes, and encoders;
- :mod:`.proxy`: :class:`~.proxy.WireProxy`, one per store instance: counts storage reads, holds
  replies and commands, gates reads and publishes, holds/drops/duplicates/injects pushes
  (pub/sub and tracking invalidations), follows each connection's subscriptions, cuts
  connections and proves with a barrier that earlier pushes arrived;
- :mod:`.records`: what the proxy records and hands out (:class:`~.records.WireDelivery`,
  :class:`~.records.ConnectionState`, :class:`~.records.Publish`, :class:`~.records.WireFault`,
  :class:`~.records.HeldReply`, :class:`~.records.HeldCommand`).

Importing :mod:`.proxy` or :mod:`.records` imports redis (through the harness's client-path
modules, for the read classification and ``as_text``); :mod:`.resp` is standard library only.
"""
