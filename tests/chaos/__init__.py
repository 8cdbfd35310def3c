"""Chaos suite: contract §8 proven from outside under crashes, restarts, duplicates and poison."""
