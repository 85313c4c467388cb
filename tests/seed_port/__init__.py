"""A faithful port of the seed's own P1-2 code, kept to prove the harness catches it."""
