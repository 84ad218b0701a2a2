"""CI freezes the license agent AND the storefront with PyInstaller (the real specs, the real
`python -m installers build` command), packs the Linux bundle, installs it with its install
script into a temp home, and uses the FROZEN programs for real: the agent's --version, trust,
device, install a code, check until refused, its keyring backends; the storefront against a
real server; the menu entry and tokenrent:// handler; then uninstalls.
Slow (about a minute on two cores) but part of every CI run."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.support.installers_agent import ROOT, AgentHome, agent_command, have_agent_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    # scripts/venv.sh always installs the console script: its absence is a broken setup, not a skip.
    if not have_agent_cli():
        pytest.fail("the license-agent console script is missing next to this Python (run scripts/venv.sh)")
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        pytest.fail("PyInstaller is not installed: it is in the test extra (pip install -e '.[test]')")
    base = tmp_path_factory.mktemp("freeze")
    proc = subprocess.run([sys.executable, "-m", "installers", "build", "all", "--bundle",
                           "--dist", str(base / "dist"), "--work", str(base / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=1100)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    archives = list((base / "dist").glob("tokenrent-[0-9]*-linux-*.tar.gz"))
    assert len(archives) == 1, list((base / "dist").iterdir())
    return archives[0]


@pytest.fixture(scope="module")
def installed(bundle, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("user")
    with tarfile.open(bundle) as tar:
        tar.extractall(base / "unpacked", filter="data")
    (top,) = list((base / "unpacked").iterdir())
    env = dict(os.environ, HOME=str(base / "home"), PREFIX=str(base / "home" / ".local"),
               XDG_DATA_HOME=str(base / "home" / ".local" / "share"),
               XDG_CONFIG_HOME=str(base / "home" / ".config"))
    proc = subprocess.run(["/bin/sh", str(top / "install.sh")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "installed in" in proc.stdout and "tokenrent license-agent" in proc.stdout
    return {"env": env, "prefix": Path(env["PREFIX"]), "top": top}


def test_frozen_agent_reports_the_same_version(installed):
    frozen = installed["prefix"] / "bin" / "license-agent"
    assert frozen.is_symlink() and os.access(frozen, os.X_OK)
    out = subprocess.run([str(frozen), "--version"], capture_output=True, text=True, env=installed["env"])
    assert out.returncode == 0, out.stderr
    plain = subprocess.run([*agent_command(), "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == plain.stdout.strip() and out.stdout.strip()
    # It really is the frozen one: no Python interpreter of ours runs it.
    assert (installed["prefix"] / "lib" / "tokenrent" / "license-agent" / "_internal").is_dir()


def test_frozen_agent_installs_a_code_and_counts_down(installed, tmp_path):
    frozen = str(installed["prefix"] / "bin" / "license-agent")
    agent = AgentHome(tmp_path / "home", agent=[frozen])
    agent.trust_vendor()
    device = agent.device()
    assert len(device["device_id"]) == 32
    agent.grant("42", "uses", uses=2)
    first = agent.cli_json("check", "42")
    assert first["allowed"] is True and first["remaining"] == 1
    second = agent.cli_json("check", "42")
    assert second["remaining"] == 0
    refused = agent.cli_json("check", "42", expect=3)
    assert refused["allowed"] is False and refused["store_url"] == "tokenrent://product/42"
    # The frozen agent and the non-frozen one share the same state format.
    plain = AgentHome(agent.home, vendor_key=agent.vendor_key)
    assert plain.cli("check", "42").returncode == 3


def test_frozen_agent_finds_the_same_secret_store(installed, tmp_path):
    """The frozen agent must see the keyring backends the non-frozen one sees (keyring finds them
    through package metadata, which PyInstaller drops unless told)."""
    frozen = str(installed["prefix"] / "bin" / "license-agent")
    env = dict(os.environ, LICENSE_AGENT_HOME=str(tmp_path / "a"))
    doctor = subprocess.run([frozen, "doctor", "--json"], capture_output=True, text=True, env=env)
    plain = subprocess.run([*agent_command(), "doctor", "--json"], capture_output=True, text=True,
                           env=dict(env, LICENSE_AGENT_HOME=str(tmp_path / "b")))
    import json
    assert json.loads(doctor.stdout)["secret_store"] == json.loads(plain.stdout)["secret_store"]


def test_frozen_agent_uses_a_real_secret_service(installed, tmp_path):
    """Under a real Secret Service (gnome-keyring in a private D-Bus session) the frozen agent
    keeps its secrets there, not in the file fallback: secretstorage/jeepney were frozen along."""
    import shutil
    missing = [c for c in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install dbus gnome-keyring; .ci/run does)")
    frozen = str(installed["prefix"] / "bin" / "license-agent")
    env = dict(os.environ, LICENSE_AGENT_HOME=str(tmp_path / "a"))
    env.pop("PYTHON_KEYRING_BACKEND", None)
    proc = subprocess.run(["dbus-run-session", "--", "bash", str(ROOT / "scripts" / "with-gnome-keyring"),
                           frozen, "doctor", "--json"], capture_output=True, text=True, env=env, timeout=120)
    import json
    facts = json.loads(proc.stdout)
    assert facts["weaker_protection"] is False, facts
    assert "secret" in facts["secret_store"].lower(), facts


def test_frozen_storefront_talks_to_a_real_server(installed, tmp_path):
    from tests.support.server import start_server
    srv, cleanup = start_server("sqlite", tmp_path / "server", demo=True)
    env = dict(installed["env"], QT_QPA_PLATFORM="offscreen", TOKENRENT_HOME=str(tmp_path / "home"),
               LICENSE_AGENT_HOME=str(tmp_path / "agent"))
    app = subprocess.Popen([str(installed["prefix"] / "bin" / "tokenrent"), "--server", srv.base_url],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "/v1/products" not in srv.log_text():
            assert app.poll() is None, app.stdout.read().decode(errors="replace")[-3000:]
            time.sleep(0.2)
        assert "/v1/products" in srv.log_text(), "the frozen storefront never asked for the catalog"
        # ... and it found the frozen agent beside it (its library asks the agent at start).
        state = tmp_path / "agent" / "state.sqlite3"
        while time.monotonic() < deadline and not state.exists():
            time.sleep(0.2)
        assert state.exists(), "the frozen storefront never reached the agent"
        assert app.poll() is None                      # still running: no import error, no crash
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        cleanup()


def test_frozen_runner_runs_a_rented_python_program_without_any_python(installed, tmp_path):
    """Users of the frozen storefront may have no Python: {python} programs run under the
    tokenrent-python beside the storefront, with PySide6 and the agent SDK, and count down."""
    from PySide6.QtGui import QColor, QImage

    from installers.demo_packages import DEMO_PROGRAMS, build_program_package
    from license_agent import install_store
    from license_agent import package_format as pf
    runner = installed["prefix"] / "lib" / "tokenrent" / "tokenrent" / install_store.FROZEN_PYTHON_RUNNER
    assert runner.is_file()
    agent = AgentHome(tmp_path / "home", agent=[str(installed["prefix"] / "bin" / "license-agent")])
    agent.trust_vendor()
    agent.grant("4", "processings", processings=3)
    raster = next(p for p in DEMO_PROGRAMS if p.folder == "raster_tool")
    package = build_program_package(raster, "4", tmp_path / "raster.trpkg", agent.vendor_key)
    program = install_store.install_package(package, tmp_path / "programs", pf.trusted_keys_for(agent.vendor_key.public_key()))
    image = QImage(16, 16, QImage.Format.Format_RGB32)
    image.fill(QColor(90, 90, 90))
    assert image.save(str(tmp_path / "page.png"))
    env = dict(agent.env, PATH="/usr/bin:/bin", QT_QPA_PLATFORM="offscreen")  # no venv, no project
    env.pop("PYTHONPATH", None)
    run = subprocess.run([*install_store.entry_command(program, python=str(runner)), "-o", str(tmp_path / "out"),
                          str(tmp_path / "page.png")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 processings left" in run.stdout and (tmp_path / "out" / "page.cleanup.png").is_file()
    assert agent.remaining("4") == 2


def test_menu_entry_and_url_handler_point_at_the_storefront(installed):
    env = installed["env"]
    desktop = Path(env["XDG_DATA_HOME"]) / "applications" / "tokenrent.desktop"
    text = desktop.read_text()
    assert f"Exec={installed['prefix'] / 'bin' / 'tokenrent'} %u" in text
    assert "MimeType=x-scheme-handler/tokenrent;" in text
    import shutil
    if shutil.which("xdg-mime"):
        out = subprocess.run(["xdg-mime", "query", "default", "x-scheme-handler/tokenrent"],
                             env=env, capture_output=True, text=True)
        assert out.stdout.strip() == "tokenrent.desktop"
    else:  # install.sh wrote the association itself
        mimeapps = (Path(env["XDG_CONFIG_HOME"]) / "mimeapps.list").read_text()
        assert "x-scheme-handler/tokenrent=tokenrent.desktop;" in mimeapps.split("[Default Applications]")[1]


# Last: it removes what the tests above use.
def test_uninstall_removes_programs_entry_and_handler(installed):
    env, prefix = installed["env"], installed["prefix"]
    share = Path(env["XDG_DATA_HOME"])
    uninstall = prefix / "lib" / "tokenrent" / "uninstall.sh"
    # Without PREFIX: the installed uninstall.sh finds its install from its own location.
    bare = {k: v for k, v in env.items() if k != "PREFIX"}
    proc = subprocess.run(["/bin/sh", str(uninstall)], env=bare, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for gone in (prefix / "bin" / "license-agent", prefix / "bin" / "tokenrent", prefix / "lib" / "tokenrent",
                 share / "applications" / "tokenrent.desktop"):
        assert not gone.exists(), gone
    mimeapps = Path(env["XDG_CONFIG_HOME"]) / "mimeapps.list"
    assert not mimeapps.exists() or "tokenrent" not in mimeapps.read_text()
