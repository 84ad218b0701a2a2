"""TokenRent license agent: verifies authorization codes and counts down time, uses and
processings before a rented program runs. See docs/agent-protocol.md."""

__version__ = "0.1.0"
