"""Tally's data: the envelope, commands, outcome events and stored documents."""
