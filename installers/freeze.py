"""What PyInstaller needs to freeze each TokenRent application (shared by the .spec files).

One place for the hidden imports and data the frozen programs need at run time and that
PyInstaller's import scan cannot see: keyring finds its backends through entry points (so its
metadata must travel along), secretstorage/jeepney are only imported by the Secret Service
backend, and cryptography's Rust bindings are loaded lazily.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "specs"

AGENT_NAME = "license-agent"
STOREFRONT_NAME = "tokenrent"
# Runs Python programs the storefront installs ({python} in their entry) in frozen installs.
from license_agent.install_store import FROZEN_PYTHON_RUNNER as RUNNER_NAME  # noqa: E402
PROGRAMS = ROOT / "installers" / "programs"
URL_SCHEME = "tokenrent"
# Strip debug symbols from shared libraries on Linux (binutils' strip): libpython alone shrinks
# from about 23 MB to 5 MB. Windows has nothing to strip; on macOS it would break code signing.
STRIP = sys.platform.startswith("linux")

# Keyring backends per platform; collect_submodules adds whatever this keyring version has.
KEYRING_HIDDEN = [
    "keyring.backends.fail",
    "keyring.backends.null",
    "keyring.backends.chainer",
    "keyring.backends.SecretService",
    "keyring.backends.libsecret",
    "keyring.backends.kwallet",
    "keyring.backends.macOS",
    "keyring.backends.Windows",
]
LINUX_SECRET_SERVICE = ["secretstorage", "jeepney", "jeepney.io.blocking"]
CRYPTOGRAPHY_HIDDEN = [
    "cryptography.hazmat.bindings._rust",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.hazmat.primitives.asymmetric.x25519",
    "cryptography.hazmat.primitives.ciphers.aead",
    "cryptography.hazmat.primitives.kdf.hkdf",
]
# Test and server packages never belong in the user's programs.
EXCLUDES = ["pytest", "_pytest", "hypothesis", "schemathesis", "pytestqt", "server_stub",
            "installers", "tkinter", "IPython", "setuptools", "pip"]
# The storefront uses only these Qt modules; leaving the rest out keeps the bundle smaller.
QT_EXCLUDES = ["PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets", "PySide6.QtSql",
               "PySide6.QtTest", "PySide6.QtDesigner", "PySide6.QtOpenGL", "PySide6.QtOpenGLWidgets",
               "PySide6.Qt3DCore", "PySide6.QtMultimedia", "PySide6.QtWebEngineCore"]


# Linux storefront: the GTK3 platform-theme plugin drags in GTK, Cairo, Pango and friends
# (about 22 MB) only to borrow GTK's file dialogs and colours; Qt's own are used without it.
# Qt's translations (7 MB) are not used by the English-only storefront.
GTK_THEME_PLUGIN = "libqgtk3.so"
GTK_ONLY_LIBS = {
    "libXcomposite.so.1", "libXcursor.so.1", "libXdamage.so.1", "libXext.so.6", "libXfixes.so.3",
    "libXi.so.6", "libXinerama.so.1", "libXrandr.so.2", "libXrender.so.1", "libatk-1.0.so.0",
    "libatk-bridge-2.0.so.0", "libatspi.so.0", "libcairo-gobject.so.2", "libcairo.so.2",
    "libdatrie.so.1", "libepoxy.so.0", "libfribidi.so.0", "libgdk-3.so.0", "libgdk_pixbuf-2.0.so.0",
    "libgraphite2.so.3", "libgtk-3.so.0", "libharfbuzz.so.0", "libjpeg.so.62", "libpango-1.0.so.0",
    "libpangocairo-1.0.so.0", "libpangoft2-1.0.so.0", "libpixman-1.so.0", "libthai.so.0",
}


def trim_storefront(toc: list) -> list:
    """Drop what the storefront does not need from PyInstaller's binaries/datas lists (Linux)."""
    if not sys.platform.startswith("linux"):
        return toc
    out = []
    for entry in toc:
        dest = entry[0].replace("\\", "/")
        name = dest.rsplit("/", 1)[-1]
        if "/Qt/translations/" in dest or name == GTK_THEME_PLUGIN or name in GTK_ONLY_LIBS:
            continue
        out.append(entry)
    return out


def _present(modules: list[str]) -> list[str]:
    import importlib.util
    out = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is not None:
                out.append(name)
        except (ImportError, ValueError):
            pass
    return out


def hidden_imports(app: str) -> list[str]:
    from PyInstaller.utils.hooks import collect_submodules
    names = KEYRING_HIDDEN + CRYPTOGRAPHY_HIDDEN + collect_submodules("keyring.backends")
    if sys.platform.startswith("linux"):
        names += LINUX_SECRET_SERVICE
    names += collect_submodules("license_agent")
    if app == STOREFRONT_NAME:
        names += collect_submodules("desktop_app")
    return sorted(set(_present(names)) - set(NOT_ON_THIS_PLATFORM))


def datas(app: str) -> list[tuple[str, str]]:
    from PyInstaller.utils.hooks import collect_data_files, copy_metadata
    out = copy_metadata("keyring")
    try:  # --version reads the installed project's metadata when there is no __version__
        out += copy_metadata("tokenrent")
    except Exception:
        pass
    if app == STOREFRONT_NAME:
        out += collect_data_files("desktop_app")
    return out


# keyring imports every backend at start-up; its macOS backend's `api` module looks for the
# Security framework with ctypes.util.find_library, which on Linux runs ldconfig and gcc: about
# 45 ms of every agent start. The backend already guards that import, so leaving the module
# out of non-macOS builds only skips the search.
NOT_ON_THIS_PLATFORM = [] if sys.platform == "darwin" else ["keyring.backends.macOS.api"]


def excludes(app: str) -> list[str]:
    out = list(EXCLUDES) + NOT_ON_THIS_PLATFORM
    if app == AGENT_NAME:
        out += ["PySide6", "shiboken6", "desktop_app", "requests"]
    else:
        out += QT_EXCLUDES
    return out


def entry_script(app: str) -> str:
    name = {AGENT_NAME: "license_agent_entry.py", STOREFRONT_NAME: "tokenrent_entry.py",
            RUNNER_NAME: "program_runner_entry.py"}[app]
    return str(ROOT / "installers" / "entry" / name)


# What a rented Python program may import under tokenrent-python: the SDK, Qt's widgets, and
# the standard library modules programs commonly use (PyInstaller only bundles what it sees
# imported, and it never sees the programs, which arrive later as packages). The example
# programs are analysed too, so whatever they import is there.
RUNNER_STDLIB = [
    "argparse", "base64", "csv", "dataclasses", "datetime", "decimal", "fractions", "functools",
    "glob", "gzip", "hashlib", "io", "itertools", "json", "logging", "math", "random", "re",
    "shlex", "shutil", "sqlite3", "statistics", "string", "subprocess", "tempfile", "textwrap",
    "threading", "time", "typing", "uuid", "zipfile", "zlib", "pathlib", "collections",
    "contextlib", "enum", "heapq", "bisect", "struct", "unicodedata", "urllib.parse", "xml.etree.ElementTree",
]


def runner_hidden_imports() -> list[str]:
    names = hidden_imports(STOREFRONT_NAME) + RUNNER_STDLIB + [
        "license_agent.client", "PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "shiboken6"]
    names += [p.stem for p in PROGRAMS.glob("*/*.py")]
    return sorted(set(_present(names)))


def runner_pathex() -> list[str]:
    return [str(ROOT)] + sorted(str(p) for p in PROGRAMS.iterdir() if p.is_dir())
