"""Seed 000's JobManager examples, translated to redisjobs (only the import changes)."""
