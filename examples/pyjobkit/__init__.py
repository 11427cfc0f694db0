"""Seed 001's Pyjobkit cases 1-4, translated to redisjobs (imports and backends change)."""
