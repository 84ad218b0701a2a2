"""Desktop notifications: one small interface, three real backends.

The backend is chosen once, when the window is built:

- ``tray``: QSystemTrayIcon.showMessage, when QSystemTrayIcon.isSystemTrayAvailable();
  clicking the message opens the product's page;
- ``notify-send``: the freedesktop notifier, when ``notify-send`` is on PATH (no tray:
  many Wayland / GNOME desktops); the message carries the tokenrent://product/ID link;
- ``banner``: neither: the in-app banner only.

The in-app banner always shows the notice too, with a link to the product page.
Every notification sent is recorded in ``sent`` and announced by ``notified``.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QStyle, QSystemTrayIcon, QWidget

BACKENDS = ("tray", "notify-send", "banner")


@dataclass(frozen=True)
class Notification:
    title: str
    text: str
    link: str          # tokenrent://product/ID: the way to the store
    backend: str       # which backend carried it (one of BACKENDS)


def choose_backend() -> str:
    if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
        return "tray"
    if shutil.which("notify-send"):
        return "notify-send"
    return "banner"


class Notifier(QObject):
    notified = Signal(object)           # Notification
    linkActivated = Signal(str)         # the user clicked a notice: open this tokenrent:// link

    def __init__(self, window: QWidget, banner, backend: str | None = None):
        super().__init__(window)
        self.backend = backend or choose_backend()
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown notification backend {self.backend!r}")
        self.banner = banner
        self.sent: list[Notification] = []
        self._last_link = ""
        self.tray: QSystemTrayIcon | None = None
        self.notify_send = shutil.which("notify-send") if self.backend == "notify-send" else None
        if self.backend == "tray":
            icon = window.style().standardIcon(QStyle.StandardPixmap.SP_ComputerIcon)
            self.tray = QSystemTrayIcon(icon, window)
            self.tray.setToolTip("TokenRent")
            self.tray.messageClicked.connect(self._open_last_link)
            self.tray.show()
        banner.linkActivated.connect(self.linkActivated)

    def describe(self) -> str:
        return {"tray": "system tray messages",
                "notify-send": f"desktop notifications (notify-send: {self.notify_send})",
                "banner": "in the app only (no system tray, no notify-send)"}[self.backend]

    def _open_last_link(self) -> None:
        if self._last_link:
            self.linkActivated.emit(self._last_link)

    def notify(self, title: str, text: str, link: str) -> Notification:
        self.banner.show_message(text, "warning", link=(link, "Open it in the store"))
        note = Notification(title, text, link, self.backend)
        self._last_link = link
        if self.tray is not None:
            self.tray.showMessage(title, text, QSystemTrayIcon.MessageIcon.Warning, 15000)
        elif self.backend == "notify-send":
            from desktop_app.api.worker import run_async
            cmd = [self.notify_send or "notify-send", "--app-name=TokenRent", "--urgency=normal", title,
                   f"{text}\nOpen it in the store: {link}"]
            run_async(lambda: subprocess.run(cmd, capture_output=True, timeout=10), None, lambda _e: None)
        self.sent.append(note)
        self.notified.emit(note)
        return note
