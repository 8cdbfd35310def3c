"""Unit tests: models and handlers, no I/O."""
