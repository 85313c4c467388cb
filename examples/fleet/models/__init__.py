"""Model lifecycle: shadow runs and promotion."""
