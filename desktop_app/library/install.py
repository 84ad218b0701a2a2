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


def scoped(programs_root: Path, product_key) -> tuple[Path, str]:
    """Where a product lives: the home store's in <root>/<id> (as always), another member's in
    <root>/@<member>/<id>, since every store numbers its products from 1 ('@' starts no product id)."""
    from license_agent.code_terms import split_ref
    issuer, product_id = split_ref(str(product_key))
    return (Path(programs_root) / f"@{issuer}", product_id) if issuer else (Path(programs_root), product_id)


def member_trusted_keys(keys_b64: dict[str, str]) -> dict:
    """A member's code keys as the agent trusts them (vouched for by the pinned mall key)."""
    if not keys_b64:
        raise InstallError("The license agent does not trust this store's keys yet; buy there once to install "
                           "its programs.")
    pf = _pf()
    return pf.trusted_keys_for(*(pf.public_key_from_b64(b64) for b64 in keys_b64.values()))


def trusted_keys(vendor_key: VendorKey | None) -> dict:
    if vendor_key is None:
        raise InstallError("The vendor's key is not known yet; connect to the store once to install programs.")
    pf = _pf()
    # Every key the server still trusts (`keys`), so packages published before a key rotation
    # still install; the current key always.
    listed = [k.public_key for k in vendor_key.keys]
    return pf.trusted_keys_for(*(pf.public_key_from_b64(b64)
                                 for b64 in dict.fromkeys([vendor_key.public_key, *listed])))


def install_downloaded(package_file: Path, programs_root: Path, product_key, vendor_key: VendorKey | None,
                       member_keys: dict[str, str] | None = None):
    """Verify the package and install it for this user. Returns the InstalledProgram. A member's
    product (`MEMBER/ID`) is checked against that member's code keys (``member_keys``, from
    the agent), never against the home vendor's."""
    pf = _pf()
    root, product_id = scoped(programs_root, product_key)
    keys = member_trusted_keys(member_keys or {}) if root != Path(programs_root) else trusted_keys(vendor_key)
    try:
        return _store().install_package(package_file, root, keys, expected_product_id=product_id)
    except pf.PackageError as exc:
        raise InstallError(f"The program could not be installed: {exc}") from exc


def installed(programs_root: Path, product_key):
    pf = _pf()
    root, product_id = scoped(programs_root, product_key)
    try:
        return _store().installed_program(root, product_id)
    except pf.PackageError:
        return None


def uninstall(programs_root: Path, product_key) -> bool:
    pf = _pf()
    root, product_id = scoped(programs_root, product_key)
    try:
        return _store().uninstall_program(root, product_id)
    except pf.PackageError as exc:
        raise InstallError(str(exc)) from exc


def launch_command(programs_root: Path, product_key) -> tuple[list[str], Path]:
    """The program's command line and the folder it runs in."""
    program = installed(programs_root, product_key)
    if program is None:
        raise InstallError("The program is not installed on this computer; download and install it first.")
    return _store().entry_command(program), program.directory

