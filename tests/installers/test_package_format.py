"""The program-package format: build, verify, extract, install, and every refusal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_agent import install_store

from license_agent import package_format as pf

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def vendor_key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trusted(vendor_key):
    return pf.trusted_keys_for(vendor_key.public_key())


@pytest.fixture
def program_dir(tmp_path):
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "run.sh").write_text("#!/bin/sh\necho hello from the program\n")
    (src / "run.sh").chmod(0o755)
    (src / "lib" / "data.bin").write_bytes(os.urandom(50_000))
    (src / "README.txt").write_text("read me\n")
    return src


@pytest.fixture
def package(tmp_path, program_dir, vendor_key):
    out = tmp_path / "prog.trpkg"
    pf.build_package(program_dir, out, product_id="4", version="1.0.0", entry="run.sh --fast",
                     signing_key=vendor_key, name="Prog")
    return out


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def rewrite_zip(src: Path, dst: Path, change) -> None:
    """Copy a package entry by entry, letting change(name, data) -> (name, data) | None alter it."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            result = change(info.filename, zin.read(info))
            if result is not None:
                zout.writestr(result[0], result[1])


def test_build_then_verify_lists_every_file_with_size_and_hash(package, trusted, program_dir):
    verified = pf.verify_package(package, trusted)
    m = verified.manifest
    assert (m.product_id, m.version, m.entry, m.name) == ("4", "1.0.0", "run.sh --fast", "Prog")
    by_path = {f.path: f for f in m.files}
    assert set(by_path) == {"run.sh", "lib/data.bin", "README.txt"}
    data = (program_dir / "lib" / "data.bin").read_bytes()
    import hashlib
    assert by_path["lib/data.bin"].size == len(data)
    assert by_path["lib/data.bin"].sha256 == hashlib.sha256(data).hexdigest()
    assert by_path["run.sh"].executable and not by_path["README.txt"].executable


def test_extract_reproduces_the_files(package, trusted, program_dir, tmp_path):
    dest = tmp_path / "out"
    pf.extract_package(package, dest, trusted)
    assert listing(dest) == listing(program_dir)
    for rel in ("run.sh", "lib/data.bin", "README.txt"):
        assert (dest / rel).read_bytes() == (program_dir / rel).read_bytes()
    assert os.access(dest / "run.sh", os.X_OK)


def test_every_single_byte_flip_in_a_file_is_refused(package, trusted, tmp_path):
    raw = package.read_bytes()
    # Flip bytes spread over the whole archive: whatever part they hit, it must be refused.
    refused = 0
    step = max(1, len(raw) // 97)
    for offset in range(0, len(raw), step):
        bad = bytearray(raw)
        bad[offset] ^= 0x5A
        dest = tmp_path / f"flip-{offset}"
        try:
            pf.extract_package(bytes(bad), dest, trusted)
        except pf.PackageError as e:
            assert str(e) and "\n" not in str(e)
            refused += 1
            assert not dest.exists()
        else:
            # Only bytes the format does not read (zip timestamps, comments, local-header padding)
            # may change without a refusal, and then the files must still be exactly right.
            assert listing(dest) == ["README.txt", "lib", "lib/data.bin", "run.sh"]
    assert refused > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".incoming")] == []


def test_tampered_file_content_is_refused_with_its_name(package, trusted, tmp_path):
    bad = tmp_path / "bad.trpkg"
    rewrite_zip(package, bad, lambda n, d: (n, d.replace(b"hello", b"HELLO")) if n == "files/run.sh" else (n, d))
    with pytest.raises(pf.FileMismatch, match="run.sh does not match its signed SHA-256"):
        pf.verify_package(bad, trusted)


def test_truncated_package_is_refused_and_leaves_nothing(package, trusted, tmp_path):
    raw = package.read_bytes()
    for cut in (10, len(raw) // 2, len(raw) - 30):
        dest = tmp_path / f"cut{cut}"
        with pytest.raises(pf.MalformedPackage, match="not a complete TokenRent package"):
            pf.extract_package(raw[:cut], dest, trusted)
        assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prog.trpkg", "src"]


def test_wrong_key_is_refused(package):
    other = pf.trusted_keys_for(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(pf.UntrustedSigner, match="not a trusted vendor key"):
        pf.verify_package(package, other)


def test_manifest_changed_after_signing_is_refused(package, trusted, tmp_path):
    bad = tmp_path / "bad.trpkg"

    def change(name, data):
        if name == pf.MANIFEST_NAME:
            return name, data.replace(b"run.sh --fast", b"run.sh --evil")
        return name, data
    rewrite_zip(package, bad, change)
    with pytest.raises(pf.BadSignature, match="changed after the vendor signed it"):
        pf.verify_package(bad, trusted)


def test_extra_unlisted_file_is_refused(package, trusted, tmp_path):
    bad = tmp_path / "bad.trpkg"
    rewrite_zip(package, bad, lambda n, d: (n, d))
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr("files/extra.sh", b"rm -rf ~\n")
    with pytest.raises(pf.FileMismatch, match="does not list"):
        pf.verify_package(bad, trusted)


def signed_package_with_paths(tmp_path, key, paths: list[str]) -> Path:
    """A correctly SIGNED package whose manifest lists hostile paths: the signer may be
    compromised or careless; the reader must still never write outside its directory."""
    import hashlib
    files = [{"path": p, "size": 3, "sha256": hashlib.sha256(b"bad").hexdigest(), "executable": False}
             for p in paths]
    manifest = json.dumps({"format": pf.FORMAT, "product_id": "4", "version": "1", "name": "",
                           "entry": "{python} x.py", "created_at": "", "files": files},
                          sort_keys=True).encode()
    sig = {"kid": pf.kid_for(key.public_key().public_bytes_raw()),
           "signature": __import__("base64").b64encode(key.sign(manifest)).decode()}
    out = tmp_path / "evil.trpkg"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(pf.MANIFEST_NAME, manifest)
        zf.writestr(pf.SIGNATURE_NAME, json.dumps(sig))
        for p in paths:
            zf.writestr("files/" + p, b"bad")
    return out


@pytest.mark.parametrize("evil", ["../escape.txt", "a/../../escape.txt", "/etc/escape.txt",
                                  "a\\..\\escape.txt", "C:/escape.txt", "a//b", "./x", "con.txt"])
def test_path_traversal_entries_are_refused_and_nothing_written(tmp_path, vendor_key, trusted, evil):
    bad = signed_package_with_paths(tmp_path, vendor_key, [evil])
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(pf.UnsafePath):
        pf.extract_package(bad, dest, trusted)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "deep" / "escape.txt").exists()
    assert listing(tmp_path / "deep") == []


def test_case_colliding_paths_are_refused(tmp_path, vendor_key, trusted):
    bad = signed_package_with_paths(tmp_path, vendor_key, ["Run.sh", "run.sh"])
    with pytest.raises(pf.UnsafePath, match="twice"):
        pf.verify_package(bad, trusted)


def test_build_refuses_symlinks_and_missing_entry(tmp_path, vendor_key, program_dir):
    with pytest.raises(pf.PackageError, match="entry program 'nope.sh' is not a file"):
        pf.build_package(program_dir, tmp_path / "x.trpkg", product_id="4", version="1",
                         entry="nope.sh", signing_key=vendor_key)
    (program_dir / "link").symlink_to("/etc/passwd")
    with pytest.raises(pf.UnsafePath, match="symbolic link"):
        pf.build_package(program_dir, tmp_path / "x.trpkg", product_id="4", version="1",
                         entry="run.sh", signing_key=vendor_key)
    assert not (tmp_path / "x.trpkg").exists()
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("version", ["", "1 0", "../1", "v" * 80])
def test_build_refuses_bad_versions(tmp_path, vendor_key, program_dir, version):
    with pytest.raises(pf.MalformedPackage, match="version"):
        pf.build_package(program_dir, tmp_path / "x.trpkg", product_id="4", version=version,
                         entry="run.sh", signing_key=vendor_key)


def test_install_upgrade_keeps_old_until_new_then_uninstall(tmp_path, vendor_key, trusted, program_dir):
    root = tmp_path / "programs"
    v1 = tmp_path / "v1.trpkg"
    pf.build_package(program_dir, v1, product_id="4", version="1.0.0", entry="run.sh",
                     signing_key=vendor_key)
    installed = install_store.install_package(v1, root, trusted, expected_product_id="4")
    assert installed.directory == root / "4" / "1.0.0"
    assert install_store.installed_program(root, "4").version == "1.0.0"
    out = subprocess.run(install_store.entry_command(installed), capture_output=True, text=True, check=True)
    assert out.stdout == "hello from the program\n"

    # A damaged v2 leaves v1 installed and current, with no leftovers.
    (program_dir / "run.sh").write_text("#!/bin/sh\necho version two\n")
    v2 = tmp_path / "v2.trpkg"
    pf.build_package(program_dir, v2, product_id="4", version="2.0.0", entry="run.sh",
                     signing_key=vendor_key)
    raw = v2.read_bytes()
    with pytest.raises(pf.PackageError):
        install_store.install_package(raw[: len(raw) - 40], root, trusted)
    assert sorted(p.name for p in (root / "4").iterdir()) == ["1.0.0", "current.json"]
    assert install_store.installed_program(root, "4").version == "1.0.0"

    # A good v2 replaces v1.
    new = install_store.install_package(v2, root, trusted)
    assert sorted(p.name for p in (root / "4").iterdir()) == ["2.0.0", "current.json"]
    out = subprocess.run(install_store.entry_command(new), capture_output=True, text=True, check=True)
    assert out.stdout == "version two\n"

    # Reinstalling the same version works and keeps one copy.
    install_store.install_package(v2, root, trusted)
    assert sorted(p.name for p in (root / "4").iterdir()) == ["2.0.0", "current.json"]

    assert install_store.uninstall_program(root, "4") is True
    assert listing(root) == []
    assert install_store.installed_program(root, "4") is None
    assert install_store.uninstall_program(root, "4") is False


def test_install_removes_old_versions_but_never_another_installs_staging(tmp_path, vendor_key, trusted,
                                                                         program_dir):
    """Two installs of one product at once (two storefront windows, or a retry): the one that
    finishes first must not delete the other's half-unpacked staging folder."""
    root = tmp_path / "programs"
    v1, v2 = tmp_path / "v1.trpkg", tmp_path / "v2.trpkg"
    for pkg, version in ((v1, "1.0.0"), (v2, "2.0.0")):
        pf.build_package(program_dir, pkg, product_id="4", version=version, entry="run.sh",
                         signing_key=vendor_key)
    install_store.install_package(v1, root, trusted)
    # Another install of the same product is midway: unpacking, and swapping out its old copy.
    theirs = [root / "4" / ".new-0123456789abcdef0123456789abcdef",
              root / "4" / ".old-fedcba9876543210fedcba9876543210"]
    for folder in theirs:
        folder.mkdir()
        (folder / "run.sh").write_text("#!/bin/sh\necho half unpacked\n")
    install_store.install_package(v2, root, trusted)
    names = sorted(p.name for p in (root / "4").iterdir())
    assert "1.0.0" not in names and "2.0.0" in names           # the old version went
    assert all(folder.is_dir() and (folder / "run.sh").is_file() for folder in theirs), names
    # ... but what a crashed install left behind long ago is cleaned up by the next one
    hours_ago = time.time() - 2 * install_store.STALE_STAGING_SECONDS
    for folder in theirs:
        os.utime(folder, (hours_ago, hours_ago))
    install_store.install_package(v1, root, trusted)
    assert sorted(p.name for p in (root / "4").iterdir() if p.is_dir()) == ["1.0.0"]


def test_refused_first_install_creates_no_product_folder(tmp_path, package):
    root = tmp_path / "programs"
    other = pf.trusted_keys_for(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(pf.UntrustedSigner):
        install_store.install_package(package, root, other)
    assert listing(root) == []


def test_install_refuses_package_for_another_product(tmp_path, package, trusted):
    root = tmp_path / "programs"
    with pytest.raises(pf.PackageError, match="for product 4, not for product 7"):
        install_store.install_package(package, root, trusted, expected_product_id="7")
    assert listing(root) == []


@pytest.mark.parametrize("form", ["pem", "raw", "b64", "hex"])
def test_signing_key_file_forms(tmp_path, vendor_key, form):
    raw = vendor_key.private_bytes_raw()
    data = {
        "pem": vendor_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
        "raw": raw, "b64": __import__("base64").b64encode(raw) + b"\n", "hex": raw.hex().encode(),
    }[form]
    path = tmp_path / "key"
    path.write_bytes(data)
    assert pf.load_signing_key(path).private_bytes_raw() == raw


def test_cli_build_verify_and_refuse(tmp_path, program_dir, vendor_key):
    key_file = tmp_path / "vendor.pem"
    key_file.write_bytes(vendor_key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    out = tmp_path / "cli.trpkg"
    cli = [sys.executable, "-m", "installers.package"]
    r = subprocess.run(cli + ["build", str(program_dir), "--product", "9", "--version", "0.3",
                              "--entry", "run.sh", "-o", str(out), "--key", str(key_file), "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["product_id"] == "9" and summary["files"] == 3 and out.exists()
    pub = __import__("base64").b64encode(vendor_key.public_key().public_bytes_raw()).decode()
    r = subprocess.run(cli + ["verify", str(out), "--public-key", pub], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "every file matches" in r.stdout
    raw = out.read_bytes()
    out.write_bytes(raw[:-100])
    r = subprocess.run(cli + ["verify", str(out), "--public-key", pub], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 4 and "not a complete TokenRent package" in r.stderr
    r = subprocess.run(cli + ["build", str(program_dir), "--product", "9", "--version", "0.3",
                              "--entry", "run.sh", "-o", str(out)], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "TOKENRENT_VENDOR_KEY": str(tmp_path / "missing")})
    assert r.returncode == 2 and "cannot read the signing key" in r.stderr


def test_entry_command_resolves_the_packages_own_files(tmp_path):
    (tmp_path / "tool.py").write_text("")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "data.txt").write_text("")
    program = install_store.InstalledProgram("4", "1", "{python} tool.py --data lib/data.txt --mode fast", tmp_path)
    assert install_store.entry_command(program, python="/usr/bin/python3") == [
        "/usr/bin/python3", str(tmp_path / "tool.py"), "--data", str(tmp_path / "lib" / "data.txt"),
        "--mode", "fast"]
    assert install_store.entry_command(install_store.InstalledProgram("4", "1", "run.sh x", tmp_path))[0] == str(tmp_path / "run.sh")


def test_a_damaged_package_still_looks_like_a_package(package, tmp_path):
    raw = package.read_bytes()
    assert pf.looks_like_package(package) and pf.looks_like_package(raw[:100])
    with pytest.raises(pf.MalformedPackage):
        pf.read_manifest(raw[:100])
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert not pf.looks_like_package(other)
    assert not pf.looks_like_package(b"\x7fELF" + bytes(100))
    assert not pf.looks_like_package(tmp_path / "missing")


def test_build_leaves_out_caches_vcs_and_excluded_paths(tmp_path, vendor_key, program_dir, trusted):
    (program_dir / ".git").mkdir()
    (program_dir / ".git" / "HEAD").write_text("ref: x\n")
    (program_dir / "__pycache__").mkdir()
    (program_dir / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (program_dir / "lib" / "notes.tmp").write_text("scratch")
    out = tmp_path / "x.trpkg"
    m = pf.build_package(program_dir, out, product_id="4", version="1", entry="run.sh",
                         signing_key=vendor_key, exclude=("*.tmp", "lib/data.bin"))
    assert sorted(f.path for f in m.files) == ["README.txt", "run.sh"]
    assert sorted(f.path for f in pf.verify_package(out, trusted).manifest.files) == ["README.txt", "run.sh"]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PATH_ALPHABET = st.sampled_from(list("ab./\\:~ -_*?\x00\nCON") + [".."])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PATH_ALPHABET, min_size=0, max_size=12).map("".join))
def test_any_path_the_checker_accepts_stays_inside(tmp_path_factory, path):
    root = tmp_path_factory.getbasetemp() / "root"
    try:
        pf.check_relative_path(path)
    except pf.UnsafePath as e:
        assert str(e)
        return
    target = (root / path).resolve()
    assert root.resolve() in target.parents
    assert ".." not in path.split("/") and "\\" not in path and not path.startswith("/")


_FUZZ_KEY = Ed25519PrivateKey.generate()
_FUZZ_FILES = {"a.txt": b"alpha\n" * 50, "sub/b.bin": bytes(range(256)) * 8}


def _fuzz_package() -> bytes:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for rel, content in _FUZZ_FILES.items():
            (Path(tmp) / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / "src" / rel).write_bytes(content)
        pf.build_package(Path(tmp) / "src", Path(tmp) / "p.trpkg", product_id="4", version="1",
                         entry="a.txt", signing_key=_FUZZ_KEY)
        return (Path(tmp) / "p.trpkg").read_bytes()


_FUZZ_PACKAGE = _fuzz_package()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_FUZZ_PACKAGE) - 1), st.binary(min_size=1, max_size=16))
def test_random_damage_is_refused_or_harmless(tmp_path_factory, start, junk):
    """Any overwritten span of a signed package: either refused with a PackageError, or (bytes
    the format never reads) the extracted files are exactly the signed ones."""
    raw = bytearray(_FUZZ_PACKAGE)
    raw[start:start + len(junk)] = junk
    dest = tmp_path_factory.mktemp("fuzz") / "out"
    try:
        pf.extract_package(bytes(raw), dest, pf.trusted_keys_for(_FUZZ_KEY.public_key()))
    except pf.PackageError as e:
        assert str(e) and not dest.exists()
        assert [p.name for p in dest.parent.iterdir()] == []
        return
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == _FUZZ_FILES


def test_unwritable_destination_is_a_clear_error_and_leaves_nothing(package, trusted, tmp_path):
    import os
    if os.geteuid() == 0:
        # root ignores directory permissions; a file where the folder should be fails for anyone
        blocker = tmp_path / "blocked"
        blocker.write_text("a file, not a folder")
        with pytest.raises(pf.PackageError, match="cannot"):
            pf.extract_package(package, blocker / "dest", trusted)
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(pf.PackageError, match="cannot unpack into"):
            pf.extract_package(package, ro / "dest", trusted)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)
