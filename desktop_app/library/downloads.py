"""Download manager: one resumable Download per product, on worker threads.

Unfinished downloads are remembered in the library cache, so they continue
after the app is restarted (the bytes already on disk are kept). Products are named by
their product key: the bare id for the home store's, `MEMBER/ID` for another mall
member's, which is fetched from that member's server through the session there and
checked against that member's code keys as the license agent trusts them.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

from desktop_app.api.worker import run_async
from desktop_app.library import install as installer
from license_agent.code_terms import split_ref


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

    def destination(self, product_id):
        return self.state.paths.downloads_dir / f"product-{_file_part(product_id)}.trpkg"

    def received_on_disk(self, product_id) -> int:
        """Bytes of an unfinished download already on disk (blocking: a worker thread)."""
        part = self.destination(product_id).with_name(f"product-{_file_part(product_id)}.trpkg.part")
        try:
            return part.stat().st_size
        except OSError:
            return 0

    def needs_session(self, url: str, product_id: str = "") -> bool:
        """Links on the store server itself are fetched with the session token (another member's
        with the session there, opened through the home session)."""
        if split_ref(product_id)[0]:
            return True
        return same_origin(self.state.api.url(store_path(url)), self.state.api.base_url)

    def start(self, product_id, url: str, sha256: str | None = None, size: int | None = None) -> None:
        pid = str(product_id)
        if pid in self.active:
            return
        issuer = split_ref(pid)[0]
        mall = self.state.mall.mall
        member = mall.member(issuer) if issuer and mall is not None else None
        if issuer and member is None:
            self.failed.emit(pid, "That store of the mall is not known yet; open the Malls page, then try again.")
            return
        self._pending[pid] = {"url": url, "sha256": sha256, "size": size}
        self.state.cache.save()
        dest = self.destination(pid)
        sessions, agent = self.state.mall.sessions, self.state.agent
        server = sessions.public(member) if member is not None else self.state.api
        full_url = server.url(store_path(url))
        # the session token goes only to the store server itself, never to another host
        auth = self.state.api.auth_headers() if member is None and same_origin(full_url, server.base_url) else {}
        handle = _Running(self._paused.pop(pid, None))   # paused in this session: keeps its hash so far
        self.active[pid] = handle
        last = [0.0]

        def report(p):
            if handle.pause_requested:
                handle.download.pause()
            now = time.monotonic()
            if now - last[0] >= 0.05 or (p.total and p.received >= p.total):
                last[0] = now
                self.progress.emit(pid, p.received, p.total if p.total is not None else -1)

        install_dir, vendor_key = self.state.install_dir, self.state.cache.vendor_key

        def work():
            # the download engine (and requests with it) is loaded here, off the UI thread
            from desktop_app.library.download import Download, DownloadPaused
            member_keys = None
            if member is not None:     # the member's session and its keys: network and agent, so here
                if same_origin(full_url, member.base_url):
                    auth.update(sessions.client(member).auth_headers())
                member_keys = agent.status().member_keys(member.member_id)
            download = handle.download
            if download is None or download.url != full_url:
                download = Download(full_url, dest, expected_sha256=sha256, expected_size=size, headers=auth)
            download.headers.update(auth)
            download.on_progress = report
            handle.download = download
            if handle.pause_requested:
                raise DownloadPaused()
            path = download.run()
            try:
                program = installer.install_downloaded(path, install_dir, pid, vendor_key, member_keys)
            except installer.InstallError:
                path.unlink(missing_ok=True)    # refused (tampered, wrong product, unknown key): never reused
                raise
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
        """Continue unfinished downloads. Those from the store server need the session: they
        wait until the user is signed in (this is called again then)."""
        signed_in = self.state.signed_in and self.state.api.token is not None
        for pid, info in list(self._pending.items()):
            if signed_in or not self.needs_session(info["url"], pid):
                self.resume(pid)

    def pause(self, product_id) -> None:
        handle = self.active.get(str(product_id))
        if handle is not None:
            handle.pause()

    def _done(self, pid: str) -> None:
        self.active.pop(pid, None)
        self._pending.pop(pid, None)
        self.state.cache.save()
        self.installed.emit(pid)
        self.state.refresh_library()

    def _failed(self, pid: str, error) -> None:
        from desktop_app.library.download import ChecksumMismatch, DownloadPaused, SessionEnded
        handle = self.active.pop(pid, None)
        download = handle.download if handle is not None else None
        if isinstance(error, DownloadPaused):
            if download is not None:
                self._paused[pid] = download
            self.paused.emit(pid)
            return
        if isinstance(error, SessionEnded):
            # the bytes stay; once the user has signed in again the download continues
            self.state.wait_for_sign_in(lambda: self.resume(pid))
        if isinstance(error, (installer.InstallError, ChecksumMismatch)):
            self._pending.pop(pid, None)   # a bad file is not resumed; the user may start over
            self.state.cache.save()
        self.failed.emit(pid, getattr(error, "user_message", str(error)))


def _file_part(product_key) -> str:
    """A product key as part of a file name (`MEMBER/ID` holds a slash)."""
    return str(product_key).replace("/", "@")


class _Running:
    """A download on its way. Its Download is made on the worker thread; a pause asked for
    before that is kept here and honoured as soon as it exists."""

    def __init__(self, download=None):
        self.download = download
        self.pause_requested = False

    def pause(self) -> None:
        self.pause_requested = True
        if self.download is not None:
            self.download.pause()
