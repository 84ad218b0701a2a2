"""Downloads from the REAL store server that continue after a restart and after the session
ended mid-download; a refused package is not kept for next time.

The restart test keeps the session in a keyring (an in-memory keyring backend, the
third-party `keyring` package's own plug-in API), so the restarted app resumes its session
asynchronously, the way it does on a desktop with a Secret Service."""
from __future__ import annotations

import keyring
import pytest
from keyring.backend import KeyringBackend

from desktop_app.api.worker import pending_jobs
from desktop_app.app import Options, StoreApp
from desktop_app.library import install as installer
from desktop_app.library.download import Download, DownloadPaused
from tests.desktop_app.conftest import close_app, sign_in


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self):
        super().__init__()
        self.values: dict = {}

    def get_password(self, service, username):
        return self.values.get((service, username))

    def set_password(self, service, username, password):
        self.values[(service, username)] = password

    def delete_password(self, service, username):
        self.values.pop((service, username), None)


@pytest.fixture
def memory_keyring():
    before = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(before)


def start_app(qtbot, url) -> StoreApp:
    app = StoreApp(Options(server=url))
    app.start()
    qtbot.waitUntil(lambda: app.ready, timeout=30000)
    return app


def buy(qtbot, app, name):
    """Buys `name` through the API for the app's device; returns (product, delivery)."""
    state = app.state
    qtbot.waitUntil(lambda: state.device_id is not None, timeout=60000)
    product = next(p for p in state.products if p.name == name)
    offer = product.offer_of_kind("purchase")
    answer = state.api.place_order([{"offer_id": offer.id}], state.device_id, [],
                                   f"resume-{product.id}-{state.me.username}")
    return product, answer.deliveries[0]


def half_download(app, product, delivery) -> int:
    """Leaves the app's download of this product half done on disk, as a closed app does."""
    state = app.state
    dest = state.paths.downloads_dir / f"product-{product.id}.trpkg"
    d = Download(state.api.url(delivery.download_url), dest, expected_sha256=delivery.sha256,
                 expected_size=delivery.size, headers=state.api.auth_headers(), chunk_size=256)
    d.on_progress = lambda p: d.pause() if p.received >= delivery.size // 2 else None
    with pytest.raises(DownloadPaused):
        d.run()
    state.cache.data.setdefault("downloads", {})[str(product.id)] = {
        "url": delivery.download_url, "sha256": delivery.sha256, "size": delivery.size}
    return d.received_bytes()


def test_download_continues_after_a_restart_once_the_session_is_back(qtbot, app_home, store_server,
                                                                     memory_keyring):
    user = store_server.new_user(tokens=500)
    first = start_app(qtbot, store_server.base_url)
    first.window.sign_in_dialog.reject()
    sign_in(qtbot, first, user)
    product, delivery = buy(qtbot, first, "Software A")
    kept = half_download(first, product, delivery)
    assert 0 < kept < delivery.size
    close_app(qtbot, first)
    assert memory_keyring.values, "the session was not kept in the keyring"

    second = StoreApp(Options(server=store_server.base_url))      # the restart
    pid = str(product.id)
    installed, failures, first_progress = [], [], []
    second.window.library.downloads.installed.connect(installed.append)
    second.window.library.downloads.failed.connect(lambda p, msg: failures.append(msg))
    second.window.library.downloads.progress.connect(
        lambda p, received, total: first_progress.append(received) if not first_progress else None)
    second.start()
    try:
        qtbot.waitUntil(lambda: installed == [pid] or bool(failures), timeout=60000)
        assert failures == [] and installed == [pid]
        assert second.state.me.username == user.username           # signed in from the keyring
        assert first_progress[0] == kept                                # continued from the bytes on disk
        assert installer.installed(second.state.install_dir, pid) is not None
        assert not any(second.paths.downloads_dir.iterdir())
        dialog = getattr(second.window, "sign_in_dialog", None)
        assert dialog is None or not dialog.isVisible()                 # not asked to sign in needlessly
    finally:
        close_app(qtbot, second)


def test_session_ending_mid_download_asks_to_sign_in_and_continues(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=500)
    window, state = store_app.window, store_app.state
    sign_in(qtbot, store_app, user)
    product, delivery = buy(qtbot, store_app, "Software A")
    kept = half_download(store_app, product, delivery)
    pid = str(product.id)
    library = window.library
    installed, failures, first_progress = [], [], []
    library.downloads.installed.connect(installed.append)
    library.downloads.failed.connect(lambda p, msg: failures.append(msg))
    library.downloads.progress.connect(
        lambda p, received, total: first_progress.append(received) if not first_progress else None)
    window.show_page(library)
    qtbot.waitUntil(lambda: library.select_product(pid), timeout=20000)
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
    # the server ends the session (expired, or signed out elsewhere); the user presses Download
    assert store_server.api("DELETE", "/v1/sessions/current", state.api.token).status_code == 204
    library.buttons["download"].click()
    qtbot.waitUntil(lambda: getattr(window, "sign_in_dialog", None) is not None
                    and window.sign_in_dialog.isVisible(), timeout=30000)
    dialog = window.sign_in_dialog
    assert "session has ended" in dialog.banner.text()
    assert failures and "Sign in again" in failures[0] and installed == []
    assert pid in library.downloads.pending()                           # nothing was thrown away
    dialog.password.setText(user.password)
    dialog.submit()
    qtbot.waitUntil(lambda: installed == [pid], timeout=60000)
    assert first_progress[0] == kept                                     # went on from the kept bytes
    assert installer.installed(state.install_dir, pid) is not None
    assert "Installed" in library.banner.text()


def test_a_refused_package_is_not_kept_for_next_time(qtbot, store_app, store_server):
    """The package does not verify against the vendor key the app holds (here: a key that
    signed nothing of this store): the user is told, and the downloads folder is empty, so the
    next attempt fetches the file again instead of reusing the refused one."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    other = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                    serialization.PublicFormat.Raw)
    user = store_server.new_user(tokens=500)
    window, state = store_app.window, store_app.state
    sign_in(qtbot, store_app, user)
    product, delivery = buy(qtbot, store_app, "Software A")
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
    real_key = state.cache.data["vendor_key"]
    state.cache.data["vendor_key"] = dict(real_key, kid="other", public_key=base64.b64encode(other).decode(),
                                          keys=[])
    library = window.library
    failures, installed = [], []
    library.downloads.failed.connect(lambda p, msg: failures.append(msg))
    library.downloads.installed.connect(installed.append)
    pid = str(product.id)
    library.start_download(pid, {"url": delivery.download_url, "sha256": delivery.sha256,
                                 "size": delivery.size})
    qtbot.waitUntil(lambda: bool(failures), timeout=60000)
    assert "could not be installed" in failures[0]
    assert "could not be installed" in library.banner.text()
    assert installer.installed(state.install_dir, pid) is None
    assert list(state.paths.downloads_dir.iterdir()) == []
    assert pid not in library.downloads.pending()
    # with the store's real key the next attempt downloads it again and installs it
    state.cache.data["vendor_key"] = real_key
    library.start_download(pid, {"url": delivery.download_url, "sha256": delivery.sha256,
                                 "size": delivery.size})
    qtbot.waitUntil(lambda: installed == [pid], timeout=60000)
    assert installer.installed(state.install_dir, pid) is not None
