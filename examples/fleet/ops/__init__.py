"""Operations services (synchronous)."""
