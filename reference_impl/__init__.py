"""The reference backend: the P1 maintenance window done right."""
