"""The Linux bundle's install.sh / uninstall.sh, fast: the real `installers.build.linux_bundle`
packs two stand-in "frozen" programs (shell scripts that print their version) with the real
scripts; the tar.gz is unpacked and installed into a temp home like a user would. The frozen
build itself is covered by test_frozen_bundle.py (slow)."""
from __future__ import annotations

import re

import os
import platform
import subprocess
import tarfile
from pathlib import Path

import pytest

from installers import build, freeze

APPS = [freeze.AGENT_NAME, freeze.STOREFRONT_NAME]


def make_bundle(base: Path, mark: str, apps=APPS) -> Path:
    """A bundle whose programs print `<app> <mark>`; returns the unpacked folder."""
    dist = base / f"dist-{mark}"
    for app in apps:
        (dist / app).mkdir(parents=True)
        exe = dist / app / app
        exe.write_text(f"#!/bin/sh\necho {app} {mark}\n")
        exe.chmod(0o755)
        (dist / app / "_internal").mkdir()
        (dist / app / "_internal" / f"lib-{mark}.so").write_text(mark)
    archive = build.linux_bundle(dist, list(apps), log=lambda *a: None)
    with tarfile.open(archive) as tar:
        tar.extractall(base / f"unpacked-{mark}", filter="data")
    (top,) = list((base / f"unpacked-{mark}").iterdir())
    return top


@pytest.fixture
def user(tmp_path) -> dict:
    """A user whose HOME has no ~/.local install, so only the right PREFIX can be found."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(home / "share"),
            "XDG_CONFIG_HOME": str(home / "config"), "LANG": "C"}


def sh(script: Path, env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", str(script)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def run(cmd: Path, env: dict) -> str:
    proc = subprocess.run([str(cmd)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_readme_names_the_machine_it_was_built_for(tmp_path):
    top = make_bundle(tmp_path, "v1")
    readme = (top / "README.txt").read_text()
    assert f"TokenRent for Linux ({platform.machine()})" in readme
    assert "@MACHINE@" not in readme
    assert top.name.endswith(f"-linux-{platform.machine()}")


def test_install_with_prefix_then_uninstall_from_its_own_folder_without_prefix(tmp_path, user):
    top = make_bundle(tmp_path, "v1")
    prefix = tmp_path / "opt" / "tr"
    proc = sh(top / "install.sh", dict(user, PREFIX=str(prefix)))
    assert proc.returncode == 0, proc.stderr
    libdir = prefix / "lib" / "tokenrent"
    assert run(prefix / "bin" / "license-agent", user) == "license-agent v1"
    assert run(prefix / "bin" / "tokenrent", user) == "tokenrent v1"
    desktop = Path(user["XDG_DATA_HOME"]) / "applications" / "tokenrent.desktop"
    assert f"Exec={prefix / 'bin' / 'tokenrent'} %u" in desktop.read_text()
    mimeapps = Path(user["XDG_CONFIG_HOME"]) / "mimeapps.list"
    # written by xdg-mime where xdg-utils is installed (no trailing ";"), else by install.sh (with one)
    assert re.search(r"^x-scheme-handler/tokenrent=tokenrent\.desktop;?$", mimeapps.read_text(), re.M)
    assert not (Path(user["HOME"]) / ".local" / "lib" / "tokenrent").exists()

    # No PREFIX now (the user will not remember it), and started from elsewhere.
    proc = sh(libdir / "uninstall.sh", user, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"removed from {prefix}" in proc.stdout
    for gone in (libdir, prefix / "bin" / "license-agent", prefix / "bin" / "tokenrent", desktop,
                 Path(user["XDG_DATA_HOME"]) / "icons" / "hicolor" / "scalable" / "apps" / "tokenrent.svg"):
        assert not os.path.lexists(gone), gone
    assert "tokenrent" not in mimeapps.read_text()
    assert (prefix / "bin").is_dir()                   # the user's own folders stay


def test_relative_prefix_gives_working_absolute_links(tmp_path, user):
    top = make_bundle(tmp_path, "v1")
    proc = sh(top / "install.sh", dict(user, PREFIX="rel/prefix"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    link = tmp_path / "rel" / "prefix" / "bin" / "tokenrent"
    assert os.readlink(link).startswith("/")
    assert run(link, user) == "tokenrent v1"
    assert sh(tmp_path / "rel" / "prefix" / "lib" / "tokenrent" / "uninstall.sh", user).returncode == 0
    assert not os.path.lexists(link)


def test_uninstall_refuses_when_nothing_is_installed(tmp_path, user):
    top = make_bundle(tmp_path, "v1")
    proc = sh(top / "uninstall.sh", user)        # the bundle's copy: looks in ~/.local
    assert proc.returncode == 1
    assert "not installed in" in proc.stderr and str(Path(user["HOME"]) / ".local") in proc.stderr
    assert (top / "install.sh").exists()         # it deleted nothing of the bundle


def test_bundle_copy_of_uninstall_finds_the_default_prefix(tmp_path, user):
    top = make_bundle(tmp_path, "v1")
    assert sh(top / "install.sh", user).returncode == 0
    local = Path(user["HOME"]) / ".local"
    assert run(local / "bin" / "tokenrent", user) == "tokenrent v1"
    proc = sh(top / "uninstall.sh", user)
    assert proc.returncode == 0, proc.stderr
    assert not (local / "lib" / "tokenrent").exists() and not os.path.lexists(local / "bin" / "tokenrent")


def test_reinstall_over_an_existing_install_upgrades_in_place(tmp_path, user):
    prefix = tmp_path / "p"
    env = dict(user, PREFIX=str(prefix))
    assert sh(make_bundle(tmp_path, "v1") / "install.sh", env).returncode == 0
    libdir = prefix / "lib" / "tokenrent"
    proc = sh(make_bundle(tmp_path, "v2") / "install.sh", env)
    assert proc.returncode == 0, proc.stderr
    assert run(prefix / "bin" / "license-agent", user) == "license-agent v2"
    assert run(prefix / "bin" / "tokenrent", user) == "tokenrent v2"
    # Nothing of v1 is left, no staging folders either, and the records are not doubled.
    assert not list(libdir.rglob("lib-v1.so")) and list(libdir.rglob("lib-v2.so"))
    assert sorted(p.name for p in (prefix / "lib").iterdir()) == ["tokenrent"]
    installed = (libdir / "installed-files").read_text().splitlines()
    assert len(installed) == len(set(installed)) == 4
    mimeapps = (Path(user["XDG_CONFIG_HOME"]) / "mimeapps.list").read_text()
    assert mimeapps.count("x-scheme-handler/tokenrent=") == 1
    # ... and the upgraded install still uninstalls cleanly, without PREFIX.
    assert sh(libdir / "uninstall.sh", user).returncode == 0
    assert not libdir.exists() and not os.path.lexists(prefix / "bin" / "tokenrent")


def test_agent_only_bundle_over_a_full_install_drops_the_storefront(tmp_path, user):
    prefix = tmp_path / "p"
    env = dict(user, PREFIX=str(prefix))
    assert sh(make_bundle(tmp_path, "v1") / "install.sh", env).returncode == 0
    proc = sh(make_bundle(tmp_path, "v2", apps=[freeze.AGENT_NAME]) / "install.sh", env)
    assert proc.returncode == 0, proc.stderr
    assert run(prefix / "bin" / "license-agent", user) == "license-agent v2"
    desktop = Path(user["XDG_DATA_HOME"]) / "applications" / "tokenrent.desktop"
    assert not os.path.lexists(prefix / "bin" / "tokenrent")   # no dangling link into the old copy
    assert not desktop.exists()
    assert "tokenrent" not in (Path(user["XDG_CONFIG_HOME"]) / "mimeapps.list").read_text()


def test_uninstall_keeps_a_command_the_user_pointed_elsewhere(tmp_path, user):
    prefix = tmp_path / "p"
    assert sh(make_bundle(tmp_path, "v1") / "install.sh", dict(user, PREFIX=str(prefix))).returncode == 0
    mine = tmp_path / "my-agent"
    mine.write_text("#!/bin/sh\necho mine\n")
    mine.chmod(0o755)
    (prefix / "bin" / "license-agent").unlink()
    (prefix / "bin" / "license-agent").symlink_to(mine)
    assert sh(prefix / "lib" / "tokenrent" / "uninstall.sh", user).returncode == 0
    assert run(prefix / "bin" / "license-agent", user) == "mine"
    assert not os.path.lexists(prefix / "bin" / "tokenrent")
