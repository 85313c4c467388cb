"""Federation v2: DEPRECATED, kept only for ``fleet.federation.bridge``.

Its protocol, consensus, node discovery and heartbeat modules were removed in
the first maintenance window; only the engine the bridge needs remains.
"""

from fleet.legacy.fedv2.engine import FedV2Engine

__all__ = ["FedV2Engine"]
