"""The library with the REAL license agent (temp LICENSE_AGENT_HOME) and a real signed
program package: launch through the agent, counts going down, the running-low notice,
uninstall, and all of it off-line (the store server cannot be reached)."""
from __future__ import annotations

import base64
from datetime import datetime, UTC
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from desktop_app.agent.bridge import AgentBridge, AgentError
from desktop_app.api.replies import VendorKey, VendorKeyEntry
from desktop_app.library import install as installer
from license_agent import codes
from license_agent import package_format as pf

PRODUCT = "7"


def raw_public(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def store_key(key: Ed25519PrivateKey) -> VendorKey:
    """This test vendor's key as the store would name it (GET /v1/vendor-key)."""
    raw = raw_public(key)
    public_b64 = base64.b64encode(raw).decode()
    entry = VendorKeyEntry(kid=codes.kid_for(raw), public_key=public_b64, current=True)
    return VendorKey(kid=entry.kid, public_key=public_b64, keys=[entry])


@pytest.fixture
def vendor_key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def agent(app_home):
    import os
    return AgentBridge(Path(os.environ["LICENSE_AGENT_HOME"]))


def issue(agent: AgentBridge, vendor_key, *, uses=3, serial=1, low=1) -> str:
    device = agent.device()
    grant = codes.Grant(license_id="lic-7", serial=serial, product_id=PRODUCT, device_id=device.device_id,
                        kind="uses", issued_at=datetime.now(UTC), store_url=f"tokenrent://product/{PRODUCT}",
                        uses=uses, low_threshold=low, product_name="Software C")
    return codes.issue_code(grant, vendor_key, base64.b64decode(device.public_key))


def build_program(tmp_path: Path, vendor_key) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.py").write_text(
        "import os, pathlib\n"
        "p = pathlib.Path(os.environ['TR_TEST_MARKER'])\n"
        "p.write_text(p.read_text() + 'ran\\n' if p.exists() else 'ran\\n')\n")
    out = tmp_path / "software-c.trpkg"
    pf.build_package(src, out, product_id=PRODUCT, version="1.0", entry="{python} hello.py",
                     signing_key=vendor_key, name="Software C")
    return out


def test_bridge_contract(agent, vendor_key):
    device = agent.device()
    assert len(device.device_id) == 32
    trusted = agent.trust(base64.b64encode(raw_public(vendor_key)).decode())
    assert trusted.added and trusted.kid == codes.kid_for(raw_public(vendor_key))
    assert agent.status().licenses == [] and agent.status().device_id == device.device_id
    with pytest.raises(AgentError) as err:
        agent.install("TRC1.not-a-code")
    assert err.value.exit_code in (2, 4) and err.value.user_message
    # the agent's own sentence, not a guess: the --json failure's `message`
    failure = agent.call(["install", "-", "--json"], stdin="TRC1.not-a-code", check=False).answer
    assert err.value.user_message == failure["message"]
    installed = agent.install(issue(agent, vendor_key, uses=3))
    assert (installed.status, installed.license.remaining, installed.license.kind) == ("installed", 3, "uses")
    answer = agent.check(PRODUCT)             # the gate spends one use and says so itself
    assert answer.allowed and answer.remaining == 2 and answer.message.startswith("1 use spent")
    denied = agent.check("999")
    assert not denied.allowed and denied.reason == "no_license" and "tokenrent://product/999" in denied.message


def test_offline_library_launch_low_notice_uninstall(qtbot, app_home, agent, vendor_key, tmp_path, monkeypatch):
    marker = tmp_path / "marker.txt"
    monkeypatch.setenv("TR_TEST_MARKER", str(marker))
    public_b64 = base64.b64encode(raw_public(vendor_key)).decode()
    agent.trust(public_b64)
    agent.install(issue(agent, vendor_key, uses=3))

    import threading
    real_launch_command, launch_threads = installer.launch_command, []

    def recorded_launch_command(*args):      # the real function; only where it runs is noted
        launch_threads.append(threading.current_thread())
        return real_launch_command(*args)

    monkeypatch.setattr(installer, "launch_command", recorded_launch_command)
    from desktop_app.app import Options, StoreApp
    store = StoreApp(Options(server="http://127.0.0.1:9"))     # nothing listens there: off-line
    installer.install_downloaded(build_program(tmp_path, vendor_key), store.state.install_dir, PRODUCT,
                                 store_key(vendor_key))
    store.start()
    window, state = store.window, store.state
    try:
        qtbot.waitUntil(lambda: state.offline, timeout=20000)
        assert window.offline_banner.isVisible() and "Off-line" in window.offline_banner.text()
        window.show_page(window.library)
        page = window.library
        qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=20000)
        assert "programs still launch" in window.offline_banner.text()
        page.select_product(PRODUCT)
        entry = page.selected()
        assert (entry.name, entry.kind, entry.remaining, entry.total, entry.installed) == ("Software C", "uses", 3, 3, True)
        assert page.buttons["launch"].isEnabled()

        page.buttons["launch"].click()
        qtbot.waitUntil(lambda: "ran and has finished" in page.banner.text(), timeout=30000)
        assert marker.read_text() == "ran\n"
        assert launch_threads and threading.main_thread() not in launch_threads   # off the UI thread
        qtbot.waitUntil(lambda: page.selected() is not None and page.selected().remaining == 2, timeout=20000)

        page.buttons["launch"].click()                 # 1 use left: at the vendor's threshold
        qtbot.waitUntil(lambda: "running low" in page.left.text(), timeout=30000)
        assert "Extend it" in window.banner.text()     # the low-rental notice
        page.buttons["launch"].click()                 # the last use
        qtbot.waitUntil(lambda: page.selected().remaining == 0, timeout=30000)
        page.buttons["launch"].click()                 # none left: the agent refuses, nothing runs
        qtbot.waitUntil(lambda: "may not run" in page.banner.text(), timeout=30000)
        assert marker.read_text() == "ran\n" * 3

        # the cache keeps the library for the next start, even with no agent answer
        assert any(a.product_id == PRODUCT for a in state.cache.agent)
        assert len(state.cache.history(entry.license_id)) >= 2
        page.select_product(PRODUCT)
        assert len(page.chart.points()) >= 1

        page.buttons["uninstall"].click()
        qtbot.waitUntil(lambda: not page.selected().installed if page.selected() else False, timeout=20000)
        assert installer.installed(state.install_dir, PRODUCT) is None
        assert not page.buttons["launch"].isEnabled()
    finally:
        from desktop_app.api.worker import pending_jobs
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        window.close()
        store.stop()


def test_library_download_pauses_and_continues_after_restart(qtbot, app_home, vendor_key, tmp_path,
                                                             monkeypatch):
    """Download and install from the Library: paused, the app closed, a new app continues the
    download from the bytes on disk, checks SHA-256 and the vendor signature, and installs.
    The download engine (and requests with it) is set up on a worker thread, never the UI's."""
    import hashlib as _hashlib
    import os as _os
    import threading

    from desktop_app.library import download as engine
    made_on = []

    class RecordedDownload(engine.Download):   # the real engine; only where it is made is noted
        def __init__(self, *args, **kwargs):
            made_on.append(threading.current_thread())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(engine, "Download", RecordedDownload)

    from desktop_app.app import Options, StoreApp
    from tests.support.desktop_files import FileServer

    src = tmp_path / "bigsrc"
    src.mkdir()
    (src / "hello.py").write_text("print('hi')\n")
    (src / "data.bin").write_bytes(_os.urandom(4 * 1024 * 1024))   # random: the zip stays large
    package = tmp_path / "big.trpkg"
    pf.build_package(src, package, product_id=PRODUCT, version="2.0", entry="{python} hello.py",
                     signing_key=vendor_key, name="Software C")
    payload = package.read_bytes()
    sha = _hashlib.sha256(payload).hexdigest()
    info = {"url": None, "sha256": sha, "size": len(payload)}

    with FileServer(payload, bytes_per_second=2 * 1024 * 1024) as srv:
        info["url"] = srv.url
        first = StoreApp(Options(server="http://127.0.0.1:9"))
        first.state.cache.set_vendor_key(store_key(vendor_key))
        first.start()
        library = first.window.library
        paused = []
        library.downloads.paused.connect(paused.append)
        library.downloads.progress.connect(
            lambda pid, received, total: library.downloads.pause(pid) if received > 0 else None)
        library.start_download(PRODUCT, info)
        qtbot.waitUntil(lambda: paused == [PRODUCT], timeout=30000)
        part = first.paths.downloads_dir / f"product-{PRODUCT}.trpkg.part"
        kept = part.stat().st_size
        assert 0 < kept < len(payload)
        from desktop_app.api.worker import pending_jobs
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=30000)
        first.state.cache.save_now()
        first.window.close()
        first.stop()

        second = StoreApp(Options(server="http://127.0.0.1:9"))    # a restart, off-line store
        installed = []
        second.start()
        second.window.library.downloads.installed.connect(installed.append)
        qtbot.waitUntil(lambda: installed == [PRODUCT], timeout=60000)
        assert srv.requests[-1] == f"bytes={kept}-"                  # it continued, not restarted
        assert len(made_on) == 2 and threading.main_thread() not in made_on
        program = installer.installed(second.state.install_dir, PRODUCT)
        assert program is not None and program.version == "2.0"
        assert not part.exists()
        assert PRODUCT not in second.window.library.downloads.pending()
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=30000)
        second.window.close()
        second.stop()


def test_code_entered_by_hand(qtbot, app_home, agent, vendor_key):
    """Off-line delivery: a code pasted from an e-mail (wrapped, indented) is installed through
    the agent; a damaged code is refused with a plain message and changes nothing."""
    agent.trust(base64.b64encode(raw_public(vendor_key)).decode())
    code = issue(agent, vendor_key, uses=5)
    wrapped = "\n    ".join(code[i:i + 60] for i in range(0, len(code), 60))
    from desktop_app.app import Options, StoreApp
    store = StoreApp(Options(server="http://127.0.0.1:9"))
    store.start()
    try:
        page = store.window.library
        dialog = page.open_code_dialog()
        damaged = code[:40] + ("A" if code[40] != "A" else "B") + code[41:]
        dialog.text.setPlainText(damaged)
        dialog.install_button.click()
        qtbot.waitUntil(lambda: "not installed" in dialog.banner.text(), timeout=30000)
        assert agent.status().licenses == []
        dialog.text.setPlainText("  " + wrapped + "\n")
        dialog.install_button.click()
        qtbot.waitUntil(lambda: "is installed on this computer" in page.banner.text(), timeout=30000)
        qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=30000)
        assert page.model.entry(0).remaining == 5
        assert "The code for Software C is installed" in page.banner.text()     # the agent's answer names it
    finally:
        from desktop_app.api.worker import pending_jobs
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        store.window.close()
        store.stop()


def test_running_low_outside_the_app_is_noticed(qtbot, app_home, agent, vendor_key):
    """A rented program run outside the storefront (through the agent directly) still brings
    the running-low notice: the app looks at the agent's counts now and then."""
    agent.trust(base64.b64encode(raw_public(vendor_key)).decode())
    agent.install(issue(agent, vendor_key, uses=3, low=1))
    from desktop_app.app import Options, StoreApp
    store = StoreApp(Options(server="http://127.0.0.1:9"))
    store.AGENT_POLL_MS = 300
    store.start()
    try:
        qtbot.waitUntil(lambda: len(store.state.entries) == 1, timeout=30000)
        assert not store.state.entries[0].warning
        assert agent.check(PRODUCT).allowed and agent.check(PRODUCT).allowed    # 1 use left now
        qtbot.waitUntil(lambda: "Extend it" in store.window.banner.text(), timeout=30000)
        assert store.state.entries[0].remaining == 1 and store.state.entries[0].warning
    finally:
        from desktop_app.api.worker import pending_jobs
        store.agent_timer.stop()
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        store.window.close()
        store.stop()
