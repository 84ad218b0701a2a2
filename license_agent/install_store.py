"""The per-user install store: verified program packages unpacked on this computer, and the
command that starts an installed program. Agent side only: the server never imports this module
(it imports the package format, license_agent.package_format, which this module uses).

    <programs_root>/<product_id>/<version>/...   the files of each installed version
    <programs_root>/<product_id>/current.json    which version is the current one (replaced atomically)

A new version is unpacked next to the old one; current.json switches over only when it is
fully in place, and only then is the previous version removed.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .package_format import PRODUCT_RE, VERSION_RE, PackageError, extract_package, signed_manifest

CURRENT_FILE = "current.json"


@dataclass(frozen=True)
class InstalledProgram:
    product_id: str
    version: str
    entry: str
    directory: Path     # where the files are
    kid: str = ""


# --- running an installed program -------------------------------------------------------

def _resolve_entry(entry: str, directory: Path, python: str) -> list[str]:
    argv = shlex.split(entry)
    out = []
    for i, token in enumerate(argv):
        if token == "{python}":
            out.append(python)
        elif i == 0 or (not token.startswith("-") and (directory / token).is_file()):
            # The program itself and its own files are relative to the install directory.
            out.append(str(directory / token))
        else:
            out.append(token)
    return out


# The frozen storefront ships this program beside itself to run Python programs ({python}),
# since its users may have no Python (installers/entry/program_runner_entry.py).
FROZEN_PYTHON_RUNNER = "tokenrent-python"


def default_python() -> str:
    """What {python} means here: this Python; in a frozen app, the runner beside it
    (else a python3 on the PATH)."""
    if not getattr(sys, "frozen", False):
        return sys.executable
    runner = Path(sys.executable).with_name(FROZEN_PYTHON_RUNNER + (".exe" if os.name == "nt" else ""))
    return str(runner) if runner.is_file() else "python3"


def entry_command(program: InstalledProgram, python: str | None = None) -> list[str]:
    """The argv that starts an installed program (see default_python for {python})."""
    return _resolve_entry(program.entry, program.directory, python or default_python())


# --- install, uninstall ----------------------------------------------------------------------

def _product_dir(programs_root: Path, product_id: str) -> Path:
    product_id = str(product_id)
    if not PRODUCT_RE.match(product_id):
        raise PackageError(f"product id {product_id!r} is not valid")
    return Path(programs_root) / product_id


def _write_json_atomic(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def installed_program(programs_root: str | os.PathLike, product_id: str) -> InstalledProgram | None:
    pdir = _product_dir(Path(programs_root), product_id)
    try:
        doc = json.loads((pdir / CURRENT_FILE).read_text(encoding="utf-8"))
        version = doc["version"]
        if not VERSION_RE.match(version):
            return None
        directory = pdir / version
        if not directory.is_dir():
            return None
        return InstalledProgram(str(product_id), version, doc["entry"], directory, doc.get("kid", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def install_package(source: str | os.PathLike | bytes, programs_root: str | os.PathLike,
                    trusted_keys: Mapping[str, Ed25519PublicKey], *,
                    expected_product_id: str | None = None) -> InstalledProgram:
    """Verify and install a package for this user. The previous version stays until the new one
    is in place; a refused package changes nothing."""
    programs_root = Path(programs_root)
    # Verify before touching the install tree, so that even the product folder is not created
    # for a package that is refused.
    claimed, _ = signed_manifest(source, trusted_keys)
    if expected_product_id is not None and claimed.product_id != str(expected_product_id):
        raise PackageError(f"the package is for product {claimed.product_id}, "
                           f"not for product {expected_product_id}")
    pdir = _product_dir(programs_root, claimed.product_id)
    created_pdir = not pdir.exists()
    try:
        pdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PackageError(f"cannot install into {pdir}: {e.strerror or e}") from e
    staging = pdir / f".new-{uuid.uuid4().hex}"
    try:
        verified = extract_package(source, staging, trusted_keys)
    except BaseException:
        if created_pdir:
            shutil.rmtree(pdir, ignore_errors=True)
        raise
    m = verified.manifest
    final = pdir / m.version
    displaced = None
    try:
        if final.exists():  # reinstalling the same version: move the old copy aside first
            displaced = pdir / f".old-{uuid.uuid4().hex}"
            os.replace(final, displaced)
        try:
            os.replace(staging, final)
        except OSError:
            if displaced is not None:
                os.replace(displaced, final)  # put the old copy back
            raise
        _write_json_atomic(pdir / CURRENT_FILE, {
            "product_id": m.product_id, "version": m.version, "entry": m.entry, "kid": verified.kid,
            "name": m.name, "installed_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        })
    except OSError as e:  # e.g. a file of the old version in use (Windows), or the disk full
        shutil.rmtree(staging, ignore_errors=True)
        raise PackageError(f"cannot install into {pdir}: {e.strerror or e}") from e
    # Only now that the new version is current do older copies go.
    if displaced is not None:
        shutil.rmtree(displaced, ignore_errors=True)
    for child in pdir.iterdir():
        if not child.is_dir() or child.name == m.version:
            continue
        # Older versions go; another install's staging folder stays unless a
        # crash left it behind long ago.
        if VERSION_RE.match(child.name) or _stale_staging(child):
            shutil.rmtree(child, ignore_errors=True)
    return InstalledProgram(m.product_id, m.version, m.entry, final, verified.kid)


STALE_STAGING_SECONDS = 3600


def _stale_staging(folder: Path) -> bool:
    if not folder.name.startswith((".new-", ".old-")):
        return False
    try:
        return time.time() - folder.stat().st_mtime > STALE_STAGING_SECONDS
    except OSError:
        return False


def uninstall_program(programs_root: str | os.PathLike, product_id: str) -> bool:
    """Remove every installed version of a product. Returns False when nothing was installed."""
    pdir = _product_dir(Path(programs_root), product_id)
    if not pdir.exists():
        return False
    trash = pdir.with_name(f".removing-{pdir.name}-{uuid.uuid4().hex}")
    try:
        os.replace(pdir, trash)  # one rename: the product is gone at once, even if deleting is slow
    except OSError as e:
        raise PackageError(f"cannot uninstall {pdir} (is the program still running?): "
                           f"{e.strerror or e}") from e
    shutil.rmtree(trash, ignore_errors=True)
    return True
