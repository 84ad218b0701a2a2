"""Fixtures of the open-token storefront tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def state(qtbot, app_home):
    """An AppState of its own (no server behind it: these tests fill the widgets from replies)."""
    from desktop_app.paths import app_paths
    from desktop_app.settings.config import Settings
    from desktop_app.state import AppState
    return AppState(app_paths().ensure(), Settings(), "http://127.0.0.1:9")
