"""Starting the storefront: settings, the server (configured or local demo), the window."""
from __future__ import annotations

import sys
from dataclasses import dataclass

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from desktop_app.api.worker import run_async
from desktop_app.main_window import MainWindow
from desktop_app.paths import AppPaths, app_paths
from desktop_app.settings.config import load_settings
from desktop_app.state import AppState



@dataclass
class Options:
    server: str = ""
    product: str | None = None
    demo_user: bool = True
    demo: str = "mall"      # with no server: "mall" (the demo mall, signed in at its home member) or "single"


class StoreApp:
    """Owns the state, the window, and the demo server process when there is one."""

    AGENT_POLL_MS = 60_000
    PROBE_MS = 5_000          # while off-line: how often to look whether the store is back
    DEMO_USERNAME = "demo"
    DEMO_PASSWORD = "demo-pass-1"

    def __init__(self, options: Options, paths: AppPaths | None = None):
        self.options = options
        self.paths = (paths or app_paths()).ensure()
        self.settings = load_settings(self.paths)
        self.server_url = (options.server or self.settings.server_url).rstrip("/")
        self.demo = None             # DemoMall or DemoServer, when this app started one
        self._auto_sign_in = False   # signing in as the demo mall's home user
        self.state = AppState(self.paths, self.settings, self.server_url or "http://127.0.0.1:0",
                              demo=not self.server_url)
        self.window = MainWindow(self.state, demo_url="")
        self.ready = False
        self.state.meChanged.connect(self._me_changed)
        self._was_signed_in = False

    def start(self) -> None:
        self.window.show()
        QTimer.singleShot(0, self._listen)
        self.state.load_cached_library()   # the library works before (or without) the network
        # the agent's own counts need no network either; asked just after the window is up,
        # so the agent process does not compete with the first paint
        QTimer.singleShot(150, self.state.refresh_library)
        # Rented programs also run outside the app: look at the agent's counts now and then,
        # so the running-low notice comes in time.
        self.agent_timer = QTimer(self.window)
        self.agent_timer.timeout.connect(self._poll_agent)
        self.agent_timer.start(self.AGENT_POLL_MS)
        # Off-line: now and then ask the store (off the UI thread) whether it is back.
        self._probing = False
        self.probe_timer = QTimer(self.window)
        self.probe_timer.timeout.connect(self._probe)
        self.probe_timer.start(self.PROBE_MS)
        if self.server_url:
            self._server_ready(self.server_url)
            return
        from desktop_app.demo_server import DemoMall, DemoServer
        if self.options.demo == "single":
            self.window.banner.show_message("Starting the local demo store…", "info")
            self.demo = DemoServer(self.paths.demo_db)
        else:
            self.window.banner.show_message("Starting the local demo mall (its servers start in the "
                                            "background)…", "info")
            self.demo = DemoMall(self.paths.data_dir / "demo-mall")
        try:
            self.demo.launch()                     # on this (main) thread, see DemoServer.launch
        except Exception as exc:
            self._demo_failed(exc)
            return
        run_async(self.demo.wait_ready, self._server_ready, self._demo_failed)

    def _poll_agent(self) -> None:
        from desktop_app.api.worker import pending_jobs
        if pending_jobs() < 4:          # never pile up behind slow work
            self.state.refresh_library()

    def _probe(self) -> None:
        if not self.state.offline or self._probing:
            return
        self._probing = True
        run_async(self.state.api.ping, self._probed, lambda _e: setattr(self, "_probing", False))

    def _probed(self, reachable: bool) -> None:
        self._probing = False
        if not reachable or not self.state.offline:
            return
        self.state.set_offline(False)
        # what could not be had while off-line: the catalog, the session, the licenses, downloads
        self.state.load_catalog(None if self.ready else self._catalog_loaded)
        if self.state.signed_in:
            self.state.refresh_library()
            self._resume_downloads()
        else:
            self.state.resume_session(self._session_resumed)

    def _listen(self) -> None:
        from desktop_app.single_instance import InstanceServer
        self.instance_server = InstanceServer(self.paths, self.handle_request)

    def handle_request(self, product: str | None) -> None:
        """Another `tokenrent` (or a tokenrent:// link) asked for this window or a product."""
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()
        if product is None:
            return
        if self.ready:
            self.window.open_product(product)
        else:
            self.options.product = product     # opened when the catalog arrives

    def _demo_failed(self, error) -> None:
        self.window.banner.show_message(f"{error} You can set a store server address in Settings.", "error")

    def _server_ready(self, url: str) -> None:
        from desktop_app.demo_server import DemoMall
        self.state.api.base_url = url.rstrip("/")
        if isinstance(self.demo, DemoMall):
            home, user = self.demo.home_member, self.demo.home_user
            self.window.banner.show_message(
                f"This is the local demo mall: {len(self.demo.info['members'])} stores and a mall service "
                f"provider on this computer. You shop at {home['name']} ({url}) as “{user['username']}”.", "info")
            # the demo user's password is known: no keyring look-up, no dialog (another user: as usual)
            self._auto_sign_in = self.settings.last_username in ("", user["username"])
            if self._auto_sign_in:
                self.state.sign_in(user["username"], user["password"], self._auto_signed_in, self._auto_sign_in_failed)
        elif self.demo is not None:
            self.window.banner.show_message(
                f"This is the local demo store ({url}). Sign in as “{self.DEMO_USERNAME}” "
                f"(password “{self.DEMO_PASSWORD}”) or create your own account.", "info")
        self.state.load_catalog(self._catalog_loaded)
        if not self._auto_sign_in:
            self.state.resume_session(self._session_resumed)
        # Unfinished downloads continue: those from other hosts now, those from the store
        # server once the session is back (resumed from the keyring, or signed in again).
        self._resume_downloads()

    def _auto_signed_in(self, _me) -> None:
        self._auto_sign_in = False
        self._session_resumed(_me)

    def _auto_sign_in_failed(self, error) -> None:
        self._auto_sign_in = False
        self.window.banner.show_message(f"Could not sign in to the demo mall: {error}", "error")
        if self.ready and not self.state.signed_in:
            self.window.ask_sign_in()

    def _resume_downloads(self) -> None:
        if self.state.cache.data.get("downloads"):
            QTimer.singleShot(0, lambda: self.window.library.downloads.resume_all())

    def _session_resumed(self, _me) -> None:
        # the catalog may have come first and asked to sign in: the saved session made it moot
        dialog = getattr(self.window, "sign_in_dialog", None)
        if dialog is not None and dialog.isVisible():
            dialog.accept()

    def _catalog_loaded(self) -> None:
        self.ready = True
        if self.options.product:
            self.window.open_product(self.options.product)
        if not self.state.signed_in and not self.state.api.token and not self._auto_sign_in:
            dialog = self.window.ask_sign_in()
            if self.demo is not None and not self.settings.last_username:
                dialog.username.setText(self.DEMO_USERNAME)
                dialog.password.setText(self.DEMO_PASSWORD)

    def _me_changed(self, me) -> None:
        signed_in = me is not None
        if signed_in and not self._was_signed_in:
            self.window.after_sign_in()
            self._resume_downloads()
        self._was_signed_in = signed_in

    def stop(self) -> None:
        for name in ("agent_timer", "probe_timer"):
            timer = getattr(self, name, None)
            if timer is not None:
                timer.stop()
        server = getattr(self, "instance_server", None)
        if server is not None:
            server.close()
            self.instance_server = None
        if self.demo is not None:
            self.demo.stop()


def launch(options: Options) -> StoreApp | None:
    """Everything `tokenrent` does before the event loop. None: another storefront took over."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("TokenRent")
    app.setOrganizationName("TokenRent")
    paths = app_paths()
    # one storefront per user: a second start (or a link) goes to the one already open
    from desktop_app.single_instance import forward_to_running
    if forward_to_running(paths, options.product):
        return None
    store = StoreApp(options, paths)
    app.aboutToQuit.connect(store.stop)
    store.start()
    return store


def run(options: Options) -> int:
    store = launch(options)
    if store is None:
        return 0
    # Ctrl+C or a SIGTERM ends the app cleanly (the demo server stops with it). Python only
    # runs signal handlers between bytecodes, so a timer wakes it now and then.
    import signal
    app = QApplication.instance()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: app.quit())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(250)
    try:
        return QApplication.instance().exec()
    finally:
        store.stop()
        from PySide6.QtCore import QThreadPool
        QThreadPool.globalInstance().waitForDone(3000)   # let running calls end before Qt goes
