"""Policy cache."""
