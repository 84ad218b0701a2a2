"""Install / uninstall downloaded programs.

A download is a signed program package (license_agent.package_format), installed
into the per-user store (license_agent.install_store).
``install_downloaded`` is the one place the storefront turns a verified
download into an installed program: the package's signature is checked
against the vendor key and every file against the signed manifest before
anything is written. (The download engine has already checked the archive's
size and SHA-256.)
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop_app.api.replies import VendorKey


def _pf():
    from license_agent import package_format   # cryptography is loaded on first use only
    return package_format


def _store():
    from license_agent import install_store   # cryptography is loaded on first use only
    return install_store


class InstallError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.user_message = message


def trusted_keys(vendor_key: VendorKey | None) -> dict:
    if vendor_key is None:
        raise InstallError("The vendor's key is not known yet; connect to the store once to install programs.")
    pf = _pf()
    # Every key the server still trusts (`keys`), so packages published before a key rotation
    # still install; the current key always.
    listed = [k.public_key for k in vendor_key.keys]
    return pf.trusted_keys_for(*(pf.public_key_from_b64(b64)
                                 for b64 in dict.fromkeys([vendor_key.public_key, *listed])))


def install_downloaded(package_file: Path, programs_root: Path, product_id, vendor_key: VendorKey | None):
    """Verify the package and install it for this user. Returns the InstalledProgram."""
    pf = _pf()
    try:
        return _store().install_package(package_file, programs_root, trusted_keys(vendor_key),
                                        expected_product_id=str(product_id))
    except pf.PackageError as exc:
        raise InstallError(f"The program could not be installed: {exc}") from exc


def installed(programs_root: Path, product_id):
    pf = _pf()
    try:
        return _store().installed_program(programs_root, str(product_id))
    except pf.PackageError:
        return None


def uninstall(programs_root: Path, product_id) -> bool:
    pf = _pf()
    try:
        return _store().uninstall_program(programs_root, str(product_id))
    except pf.PackageError as exc:
        raise InstallError(str(exc)) from exc


def launch_command(programs_root: Path, product_id) -> tuple[list[str], Path]:
    """The program's command line and the folder it runs in."""
    program = installed(programs_root, product_id)
    if program is None:
        raise InstallError("The program is not installed on this computer; download and install it first.")
    return _store().entry_command(program), program.directory

