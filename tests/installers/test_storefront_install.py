"""The storefront's install step (desktop_app/library/install.py) with real signed packages:
a tampered or truncated download is refused with a clear message and leaves nothing behind;
an upgrade keeps the old version until the new one is in place; uninstall is clean."""
from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from desktop_app.library import install as installer
from desktop_app.api.replies import VendorKey, VendorKeyEntry
from installers.demo_packages import DEMO_PROGRAMS, build_program_package
from license_agent.codes import kid_for

RASTER = next(p for p in DEMO_PROGRAMS if p.folder == "raster_tool")


def store_key(current: Ed25519PrivateKey, *older: Ed25519PrivateKey) -> VendorKey:
    """The vendor's keys as GET /v1/vendor-key names them: the current one, then older ones."""
    entries = [VendorKeyEntry(kid=kid_for(k.public_key().public_bytes_raw()), current=k is current,
                              public_key=base64.b64encode(k.public_key().public_bytes_raw()).decode())
               for k in (current, *older)]
    return VendorKey(kid=entries[0].kid, public_key=entries[0].public_key, keys=entries)


@pytest.fixture
def vendor():
    key = Ed25519PrivateKey.generate()
    return key, store_key(key)


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def test_tampered_and_truncated_downloads_are_refused_and_leave_nothing(tmp_path, vendor):
    key, vendor_key = vendor
    good = build_program_package(RASTER, "4", tmp_path / "raster.trpkg", key)
    root = tmp_path / "programs"

    truncated = tmp_path / "truncated.trpkg"
    truncated.write_bytes(good.read_bytes()[:-300])
    with pytest.raises(installer.InstallError) as err:
        installer.install_downloaded(truncated, root, "4", vendor_key)
    assert "not a complete TokenRent package" in err.value.user_message
    assert files_under(root) == []

    tampered = tmp_path / "tampered.trpkg"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(tampered, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "files/rastertool.py":
                data = data.replace(b"return 3", b"return 0")   # "never refuse"
            zout.writestr(info.filename, data)
    with pytest.raises(installer.InstallError) as err:
        installer.install_downloaded(tampered, root, "4", vendor_key)
    assert "rastertool.py does not match its signed SHA-256" in err.value.user_message
    assert files_under(root) == []

    with pytest.raises(installer.InstallError, match="not for product 5"):
        installer.install_downloaded(good, root, "5", vendor_key)
    assert files_under(root) == []


def test_upgrade_keeps_old_until_new_is_in_place_then_uninstall(tmp_path, vendor):
    key, vendor_key = vendor
    root = tmp_path / "programs"
    v1 = build_program_package(RASTER, "4", tmp_path / "v1.trpkg", key, version="1.0.0")
    v2 = build_program_package(RASTER, "4", tmp_path / "v2.trpkg", key, version="1.1.0")
    first = installer.install_downloaded(v1, root, "4", vendor_key)
    assert first.version == "1.0.0" and installer.installed(root, "4").version == "1.0.0"
    broken = tmp_path / "v2-broken.trpkg"
    broken.write_bytes(v2.read_bytes()[:-50])
    with pytest.raises(installer.InstallError):
        installer.install_downloaded(broken, root, "4", vendor_key)
    assert installer.installed(root, "4").version == "1.0.0"          # still the old one
    assert (root / "4" / "1.0.0" / "rastertool.py").is_file()
    installer.install_downloaded(v2, root, "4", vendor_key)
    assert installer.installed(root, "4").version == "1.1.0"
    assert sorted(p.name for p in (root / "4").iterdir()) == ["1.1.0", "current.json"]
    assert installer.uninstall(root, "4") is True
    assert files_under(root) == []


def test_packages_signed_before_a_key_rotation_still_install(tmp_path):
    """GET /v1/vendor-key lists every key the vendor still trusts; a package published before
    a rotation keeps installing, one signed by anybody else does not."""
    old, new, stranger = (Ed25519PrivateKey.generate() for _ in range(3))
    vendor_key = store_key(new, old)
    root = tmp_path / "programs"
    before = build_program_package(RASTER, "4", tmp_path / "old.trpkg", old)
    assert installer.install_downloaded(before, root, "4", vendor_key).version == "1.0.0"
    foreign = build_program_package(RASTER, "5", tmp_path / "foreign.trpkg", stranger)
    with pytest.raises(installer.InstallError, match="not a trusted vendor key"):
        installer.install_downloaded(foreign, root, "5", vendor_key)
    assert installer.installed(root, "5") is None
