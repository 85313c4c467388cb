"""The worked example: the stale-read search run against cashews' Redis-assisted client-side cache."""
