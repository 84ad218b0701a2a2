"""Download manager: one resumable Download per product, on worker threads.

Unfinished downloads are remembered in the library cache, so they continue
after the app is restarted (the bytes already on disk are kept).
"""
from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

from desktop_app.api.worker import run_async
from desktop_app.library import install as installer


def store_path(url: str) -> str:
    """The store's own download links (/v1/...) are fetched from the server this app talks
    to, whatever host name the server put in them; other links (a CDN) stay as they are."""
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    if parts.path.startswith("/v1/"):
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return url


def same_origin(url: str, base_url: str) -> bool:
    from urllib.parse import urlsplit
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


class DownloadManager(QObject):
    progress = Signal(str, int, int)     # product_id, received, total (-1 unknown)
    paused = Signal(str)
    failed = Signal(str, str)            # product_id, message
    installed = Signal(str)              # product_id

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.active: dict = {}       # product id -> Download running
        self._paused: dict = {}      # product id -> Download paused in this session

    @property
    def _pending(self) -> dict:
        return self.state.cache.data.setdefault("downloads", {})

    def pending(self) -> dict:
        return dict(self._pending)

    def is_running(self, product_id) -> bool:
        return str(product_id) in self.active

    def start(self, product_id, url: str, sha256: str | None = None, size: int | None = None) -> None:
        from desktop_app.library.download import Download   # requests: loaded when first needed
        pid = str(product_id)
        if pid in self.active:
            return
        self._pending[pid] = {"url": url, "sha256": sha256, "size": size}
        self.state.cache.save()
        dest = self.state.paths.downloads_dir / f"product-{pid}.trpkg"
        full_url = self.state.api.url(store_path(url))
        # the session token goes only to the store server itself, never to another host
        auth = self.state.api.auth_headers() if same_origin(full_url, self.state.api.base_url) else {}
        download = self._paused.pop(pid, None)     # paused in this session: keeps its hash so far
        if download is None or download.url != full_url:
            download = Download(full_url, dest, expected_sha256=sha256, expected_size=size, headers=auth)
        download.headers.update(auth)
        last = [0.0]

        def report(p):
            now = time.monotonic()
            if now - last[0] >= 0.05 or (p.total and p.received >= p.total):
                last[0] = now
                self.progress.emit(pid, p.received, p.total if p.total is not None else -1)

        download.on_progress = report
        self.active[pid] = download
        install_dir, vendor_key = self.state.install_dir, self.state.cache.data.get("vendor_key")

        def work():
            path = download.run()
            program = installer.install_downloaded(path, install_dir, pid, vendor_key)
            path.unlink(missing_ok=True)
            return program

        run_async(work, lambda _p: self._done(pid), lambda e: self._failed(pid, e))

    def resume(self, product_id) -> bool:
        info = self._pending.get(str(product_id))
        if not info:
            return False
        self.start(product_id, info["url"], info.get("sha256"), info.get("size"))
        return True

    def resume_all(self) -> None:
        for pid in list(self._pending):
            self.resume(pid)

    def pause(self, product_id) -> None:
        download = self.active.get(str(product_id))
        if download is not None:
            download.pause()

    def _done(self, pid: str) -> None:
        self.active.pop(pid, None)
        self._pending.pop(pid, None)
        self.state.cache.save()
        self.installed.emit(pid)
        self.state.refresh_library()

    def _failed(self, pid: str, error) -> None:
        from desktop_app.library.download import ChecksumMismatch, DownloadPaused
        download = self.active.pop(pid, None)
        if isinstance(error, DownloadPaused):
            if download is not None:
                self._paused[pid] = download
            self.paused.emit(pid)
            return
        if isinstance(error, (installer.InstallError, ChecksumMismatch)):
            self._pending.pop(pid, None)   # a bad file is not resumed; the user may start over
            self.state.cache.save()
        self.failed.emit(pid, getattr(error, "user_message", str(error)))
