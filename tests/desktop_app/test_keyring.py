"""The session token lives in a real OS keyring (gnome-keyring's Secret Service in its own
dbus-run-session): a restarted app is signed in again from it, and no file holds it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import os, sys
from pathlib import Path
from PySide6.QtWidgets import QApplication
app = QApplication([])
from desktop_app.api.session_store import keyring_works, SessionStore
from desktop_app.app import Options, StoreApp
from desktop_app.api.worker import pending_jobs
url, username, token = sys.argv[1:4]
assert keyring_works(), "no working keyring inside the Secret Service session"

from tests.support.qt_script import wait_until as wait   # run with cwd = the repository

first = StoreApp(Options(server=url))
first.start()
wait(lambda: first.ready)
first.window.sign_in_dialog.reject()
first.state.sign_in(username, os.environ["TR_PASSWORD"])
wait(lambda: first.state.me is not None and pending_jobs() == 0)
saved = first.state.api.token
first.window.close(); first.stop()
assert SessionStore().load(url, username) == saved, "the token is not in the keyring"
second = StoreApp(Options(server=url))          # a restart: nothing in memory
second.start()
wait(lambda: second.state.me is not None)
assert second.state.me.username == username and second.state.api.token == saved
wait(lambda: pending_jobs() == 0)
home = Path(os.environ["TOKENRENT_HOME"])
for f in home.rglob("*"):
    if f.is_file():
        assert saved not in f.read_text(errors="ignore"), f"token written to {f}"
print("OK")
"""


def test_session_token_in_the_real_keyring(store_server, tmp_path):
    missing = [t for t in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"no Secret Service to test with: {', '.join(missing)} not installed "
                    "(apt-get install dbus gnome-keyring)")
    user = store_server.new_user(tokens=0)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env.update(TOKENRENT_HOME=str(tmp_path / "home"), LICENSE_AGENT_HOME=str(tmp_path / "agent"),
               QT_QPA_PLATFORM="offscreen", TR_PASSWORD=user.password, HOME=str(tmp_path))
    res = subprocess.run(["dbus-run-session", "--", "bash", str(ROOT / "scripts" / "with-gnome-keyring"),
                          sys.executable, "-c", SCRIPT, store_server.base_url, user.username, "unused"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout + res.stderr[-3000:]
