"""Risk and safety controls."""
