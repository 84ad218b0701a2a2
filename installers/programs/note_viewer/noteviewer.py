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
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QApplication, QFileDialog, QMainWindow, QPlainTextEdit

    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = QMainWindow()
    win.setWindowTitle("Note viewer" + (f" - {args.file.name}" if args.file else ""))
    editor = QPlainTextEdit()
    win.setCentralWidget(editor)
    current = {"path": args.file}
    if args.file and args.file.exists():
        editor.setPlainText(args.file.read_text(encoding="utf-8", errors="replace"))

    def save():
        if editor.isReadOnly():
            return
        path = current["path"]
        if path is None:
            name, _ = QFileDialog.getSaveFileName(win, "Save note")
            if not name:
                return
            path = current["path"] = Path(name)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(editor.toPlainText(), encoding="utf-8")
        os.replace(tmp, path)
        win.statusBar().showMessage(f"saved {path}", 3000)

    save_action = QAction("Save", win)
    save_action.setShortcut(QKeySequence.StandardKey.Save)
    save_action.triggered.connect(save)
    win.menuBar().addMenu("&File").addAction(save_action)

    def apply(answer, denied_message: str | None = None):
        if denied_message is not None:
            editor.setReadOnly(True)
            save_action.setEnabled(False)
            win.statusBar().showMessage(f"{denied_message} - read only. Rent more time at {answer}")
            return
        text = describe(answer)
        if answer.warning:
            text += f" - {answer.message}. Rent more at {answer.store_url}"
        win.statusBar().showMessage(text)

    def recheck():
        try:
            apply(client.check(pid))
        except client.Denied as e:
            apply(e.store_url, str(e))
        except client.AgentError as e:
            apply("the store", f"license refused: {e}")

    apply(first)
    timer = QTimer(win)
    timer.timeout.connect(recheck)
    timer.start(RECHECK_MS)
    if args.quit_after is not None:
        QTimer.singleShot(args.quit_after, app.quit)
    win.resize(640, 480)
    win.show()
    print(f"noteviewer: {describe(first)}", flush=True)
    code = app.exec()
    import shiboken6
    shiboken6.delete(win)  # before the QApplication goes: the closures above keep it alive
    return code


if __name__ == "__main__":
    sys.exit(main())
