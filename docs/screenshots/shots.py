"""The screenshot scripts' common start-up (take.py, take_mall.py, take_open.py): imported first,
as `from shots import ...` (a script's own folder is on sys.path), it puts the repository on
sys.path and sets the environment before anything reads it.

    OUT = out_dir(sys.argv[1:])
    tmp = scratch_home("tr-shots-")                # before desktop_app is imported
    server, cleanup = start_server("sqlite", tmp / "server", demo=True)
    shot = shooter(OUT)
    with storefront(server.base_url, (1280, 800), cleanup) as store:
        sign_in(store, "demo", "demo-pass-1")
        shot(store.window, "store")
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENRENT_ARGON2_MEMORY_KIB", "8192")     # quick sign-ins: pictures, not security
os.environ.setdefault("TOKENRENT_ARGON2_TIME_COST", "1")


def out_dir(args: list[str]) -> Path:
    """The folder the PNGs go to: the first argument, else this folder."""
    return Path(args[0]) if args else HERE


def scratch_home(prefix: str) -> Path:
    """A new temporary folder, the storefront's and the agent's homes in it and no keyring, so
    a run leaves nothing of the user's touched; the folder (servers go below it)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["TOKENRENT_HOME"] = str(tmp / "home")
    os.environ["LICENSE_AGENT_HOME"] = str(tmp / "agent")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    return tmp


def shooter(out: Path) -> Callable[[Any, str], None]:
    """``shot(widget, name)``: once the background jobs are done, the widget as ``out/name.png``."""
    from tests.support.qt_script import settle

    def shot(widget: Any, name: str) -> None:
        settle()
        out.mkdir(parents=True, exist_ok=True)
        if not widget.grab().save(str(out / f"{name}.png")):
            raise RuntimeError(f"could not save {out / f'{name}.png'}")
        print("saved", out / f"{name}.png")

    return shot


@contextmanager
def storefront(server_url: str, size: tuple[int, int], cleanup: Callable[[], None]) -> Iterator[Any]:
    """The real storefront (a StoreApp) against ``server_url``, its window at ``size`` and ready;
    afterwards it is closed and ``cleanup`` (the servers') runs, whatever happened."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 (alive for the whole run)
    from desktop_app.app import Options, StoreApp
    from tests.support.qt_script import settle, wait_until as wait

    store = StoreApp(Options(server=server_url))
    try:
        store.start()
        store.window.resize(*size)
        wait(lambda: store.ready)
        yield store
    finally:
        settle()
        store.window.close()
        store.stop()
        cleanup()


def sign_in(store: Any, username: str, password: str, *, device: bool = True,
            before_submit: Callable[[Any], None] | None = None) -> None:
    """Signs in with the sign-in dialog as a user would; ``before_submit(dialog)`` sees it filled
    in. Returns once the user (and with ``device``, the device's registration) is known, the
    window's banner cleared."""
    from tests.support.qt_script import wait_until as wait

    window, state = store.window, store.state
    dialog = window.sign_in_dialog
    dialog.username.setText(username)
    dialog.password.setText(password)
    if before_submit is not None:
        before_submit(dialog)
    dialog.submit()
    wait(lambda: state.me is not None and (not device or state.device_id is not None))
    window.banner.clear_message()
