"""Tally's rules: pure functions from (state, command, context) to a decision."""
