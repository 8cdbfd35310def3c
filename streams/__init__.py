"""Tally's I/O shell: Kafka, MongoDB, HTTP, metrics, settings and the CLI."""

__version__ = "0.1.0"
