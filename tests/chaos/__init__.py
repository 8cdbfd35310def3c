"""Chaos suite: SPEC §8 proven from outside under crashes, restarts, duplicates and poison."""
