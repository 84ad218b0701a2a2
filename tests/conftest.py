"""Shared test set-up. Part-specific fixtures live in tests/<part>/conftest.py
and in tests/support/ (real server and agent processes, no mocks)."""
import os

# Qt has no screen here; every Qt test runs offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
