"""Federation: v3 (primary) and the bridge to the deprecated v2 nodes."""
