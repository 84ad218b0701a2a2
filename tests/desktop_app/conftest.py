"""Desktop tests: the real app under pytest-qt, against a real server (temp
SQLite, demo data) and the real license agent with a temp LICENSE_AGENT_HOME."""
from __future__ import annotations


import pytest

from tests.support.server import start_server


@pytest.fixture(scope="session")
def store_server(tmp_path_factory):
    """One demo-data server (SQLite) for the desktop tests; tests create their own users."""
    srv, cleanup = start_server("sqlite", tmp_path_factory.mktemp("desktop-server"), demo=True)
    yield srv
    cleanup()


@pytest.fixture
def own_server(tmp_path):
    """A demo-data server of the test's own, for tests that stop and start it."""
    srv, cleanup = start_server("sqlite", tmp_path / "own-server", demo=True)
    yield srv
    cleanup()


@pytest.fixture
def app_home(tmp_path, monkeypatch):
    """Every file of the app and of the agent under tmp_path; no keyring."""
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LICENSE_AGENT_HOME", str(tmp_path / "agent"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    return tmp_path


@pytest.fixture
def store_app(qtbot, app_home, store_server):
    """The real StoreApp pointed at the test server, started and shown."""
    from desktop_app.app import Options, StoreApp

    app = StoreApp(Options(server=store_server.base_url))
    app.start()
    qtbot.waitUntil(lambda: app.ready, timeout=20000)
    dialog = getattr(app.window, "sign_in_dialog", None)
    if dialog is not None:
        dialog.reject()
    yield app
    from desktop_app.api.worker import pending_jobs
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)   # no answer lands on a closed window
    app.window.close()
    app.window.deleteLater()
    app.stop()


def close_app(qtbot, app) -> None:
    """Quit the storefront the way a user does, once its background work is done
    (the library cache written, so the next start finds it)."""
    from desktop_app.api.worker import pending_jobs

    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
    app.state.cache.save_now()
    app.window.close()
    app.window.deleteLater()
    app.stop()


def sign_in(qtbot, app, user):
    """Sign in through the dialog, the way a user does."""
    window = app.window
    dialog = window.ask_sign_in()
    dialog.username.setText(user.username)
    dialog.password.setText(user.password)
    dialog.submit()
    qtbot.waitUntil(lambda: app.state.me is not None, timeout=20000)
    return app.state.me
