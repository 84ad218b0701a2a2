"""`python -m installers build [agent|storefront|all] [--bundle] [--dist DIR]`

Freezes the applications with PyInstaller (one-folder, from installers/specs/*.spec) into
dist/<name>/ and, on Linux, packs them with the install/uninstall scripts, the .desktop entry
and the tokenrent:// URL handler into dist/tokenrent-<version>-linux-<arch>.tar.gz.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from installers import freeze

ROOT = freeze.ROOT
LINUX_FILES = Path(__file__).resolve().parent / "linux"
APPS = {"agent": freeze.AGENT_NAME, "storefront": freeze.STOREFRONT_NAME}


def project_version() -> str:
    try:
        from importlib.metadata import version
        return version("tokenrent")
    except Exception:
        import tomllib
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def freeze_app(app: str, dist: Path, work: Path, log=print) -> Path:
    """Run PyInstaller for one app; returns dist/<name>/."""
    spec = freeze.SPECS / f"{app}.spec"
    started = time.monotonic()
    cmd = [sys.executable, "-m", "PyInstaller", str(spec), "--noconfirm", "--clean",
           "--log-level", "WARN", "--distpath", str(dist), "--workpath", str(work / app)]
    log(f"[installers] freezing {app}: {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"PyInstaller failed for {app} (exit {proc.returncode}):\n"
                         f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    out = dist / app
    log(f"[installers] {out} ({dir_size(out) / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s")
    return out


def linux_bundle(dist: Path, apps: list[str], log=print) -> Path:
    """dist/tokenrent-<version>-linux-<arch>.tar.gz holding the frozen apps and the scripts."""
    # The full bundle is tokenrent-...; one without the storefront (what CI builds) tokenrent-agent-...
    label = "tokenrent" if freeze.STOREFRONT_NAME in apps else "tokenrent-agent"
    name = f"{label}-{project_version()}-linux-{platform.machine()}"
    stage = dist / name
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for app in apps:
        shutil.copytree(dist / app, stage / app, symlinks=True)
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy2(LINUX_FILES / script, stage / script)
        (stage / script).chmod(0o755)
    shutil.copytree(LINUX_FILES / "share", stage / "share")
    # The bundle holds native code: its README names the machine it was built for.
    readme = (LINUX_FILES / "README.txt").read_text(encoding="utf-8")
    (stage / "README.txt").write_text(readme.replace("@MACHINE@", platform.machine()), encoding="utf-8")
    (stage / "VERSION").write_text(project_version() + "\n")
    archive = dist / f"{name}.tar.gz"
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(stage, arcname=name)
    os.replace(tmp, archive)
    shutil.rmtree(stage)
    log(f"[installers] {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    return archive


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m installers build")
    ap.add_argument("what", nargs="?", choices=["agent", "storefront", "all"], default="all")
    ap.add_argument("--dist", type=Path, default=ROOT / "dist")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller")
    ap.add_argument("--bundle", action=argparse.BooleanOptionalAction, default=None,
                    help="make the Linux tar.gz (default: on Linux)")
    args = ap.parse_args(argv)
    names = [APPS[k] for k in (["agent", "storefront"] if args.what == "all" else [args.what])]
    args.dist.mkdir(parents=True, exist_ok=True)
    for app in names:
        freeze_app(app, args.dist, args.work)
    if args.bundle is None:
        args.bundle = sys.platform.startswith("linux")
    if args.bundle:
        linux_bundle(args.dist, names)
    return 0
