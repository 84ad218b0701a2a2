"""Note viewer: a small text viewer and editor, rented by time.

    noteviewer.py [FILE] [--quit-after MS]

It asks the license agent at start and every 30 seconds while open (Python SDK `check`).
While rental time is left, the note can be edited and saved; when little is left, the status
bar says so with the store link; when the time is up, the note turns read-only (nothing typed
is lost: it can still be copied) and the window shows where to rent more time.
Exit codes: 0 normal, 3 no time left at start (the store URL is printed), 4 license invalid.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECHECK_MS = 30_000


def product_id() -> str:
    """$TOKENRENT_PRODUCT_ID, else product.json beside the program, else the storefront's
    install record (<programs>/<product id>/current.json, one folder up)."""
    if os.environ.get("TOKENRENT_PRODUCT_ID"):
        return os.environ["TOKENRENT_PRODUCT_ID"]
    for record in (HERE / "product.json", HERE.parent / "current.json"):
        try:
            return str(json.loads(record.read_text())["product_id"])
        except (OSError, ValueError, KeyError):
            continue
    sys.exit("noteviewer: no product id (set TOKENRENT_PRODUCT_ID or ship product.json)")


def describe(answer) -> str:
    seconds = int(answer.remaining or 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    left = f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"
    return f"rental time left: {left}"


class NoteWindow:
    """The editor window. `sdk` is license_agent.client (or a Client for another agent home)."""

    def __init__(self, pid: str, sdk, path: Path | None, first_answer):
        from PySide6.QtCore import QTimer
        from PySide6.QtGui import QAction, QKeySequence
        from PySide6.QtWidgets import QMainWindow, QPlainTextEdit
        self.pid, self.sdk, self.path = pid, sdk, path
        self.window = QMainWindow()
        self.window.setWindowTitle("Note viewer" + (f" - {path.name}" if path else ""))
        self.editor = QPlainTextEdit()
        self.window.setCentralWidget(self.editor)
        if path and path.exists():
            self.editor.setPlainText(path.read_text(encoding="utf-8", errors="replace"))
        self.save_action = QAction("Save", self.window)
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_action.triggered.connect(self.save)
        self.window.menuBar().addMenu("&File").addAction(self.save_action)
        self.apply(first_answer)
        self.timer = QTimer(self.window)
        self.timer.timeout.connect(self.recheck)
        self.timer.start(RECHECK_MS)
        self.window.resize(640, 480)

    def status(self) -> str:
        return self.window.statusBar().currentMessage()

    def save(self) -> None:
        from PySide6.QtWidgets import QFileDialog
        if self.editor.isReadOnly():
            return
        if self.path is None:
            name, _ = QFileDialog.getSaveFileName(self.window, "Save note")
            if not name:
                return
            self.path = Path(name)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(self.editor.toPlainText(), encoding="utf-8")
        os.replace(tmp, self.path)
        self.window.statusBar().showMessage(f"saved {self.path}", 3000)

    def apply(self, answer) -> None:
        text = describe(answer)
        if answer.get("warning"):
            text += f" - {answer['message']}. Rent more at {answer['store_url']}"
        self.window.statusBar().showMessage(text)

    def deny(self, message: str, store_url: str | None) -> None:
        """Time is up: keep the text (it can still be read and copied), stop editing."""
        self.editor.setReadOnly(True)
        self.save_action.setEnabled(False)
        self.window.statusBar().showMessage(f"{message} - read only. Rent more time at {store_url or 'the store'}")

    def recheck(self) -> None:
        try:
            self.apply(self.sdk.check(self.pid))
        except self.sdk.Denied as e:
            self.deny(str(e), e.store_url)
        except self.sdk.AgentError as e:
            self.deny(f"license refused: {e}", None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="noteviewer", description="Note viewer (time rental)")
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--quit-after", type=int, metavar="MS", help="close after MS milliseconds")
    args = ap.parse_args(argv)

    from license_agent import client

    pid = product_id()
    try:
        first = client.check(pid)
    except client.Denied as e:
        print(f"noteviewer: {e}", file=sys.stderr)
        print(f"noteviewer: rent more time at {e.store_url}", file=sys.stderr)
        return 3
    except client.AgentError as e:
        print(f"noteviewer: the license agent refused: {e}", file=sys.stderr)
        return 4

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    note = NoteWindow(pid, client, args.file, first)
    note.window.show()
    if args.quit_after is not None:
        QTimer.singleShot(args.quit_after, app.quit)
    print(f"noteviewer: {describe(first)}", flush=True)
    code = app.exec()
    import shiboken6
    shiboken6.delete(note.window)  # before the QApplication goes
    return code


if __name__ == "__main__":
    sys.exit(main())
