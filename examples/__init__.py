"""Runnable examples of redisjobs (a package, so workers can import their job functions)."""
