"""Tally's exceptions: one root, and the line between an outage and a defect."""

from __future__ import annotations


class TallyError(Exception):
    """Root of Tally's own exceptions."""


class OutageError(TallyError):
    """Something Tally depends on does not answer (a JWKS endpoint, say): pause and retry,
    never a verdict and never a dead letter (SPEC §8.5)."""
