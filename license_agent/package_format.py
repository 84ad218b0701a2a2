"""The one implementation of the TokenRent program-package format.

A package is a ZIP archive holding

    tokenrent/manifest.json   product, version, entry command, every file with size and SHA-256
    tokenrent/signature.json  {"kid", "signature"}: Ed25519 over the exact manifest bytes
    files/<relative path>     the program's files

The vendor signs the manifest; the manifest pins every file's size and hash, so one signature
covers the whole program. Readers verify the signature first, then every file, and never write
outside the destination: a package that fails any check is refused with a clear message and
leaves nothing behind.

The server imports this module to read what it is asked to publish; `tokenrent-package` builds
packages with it; the per-user install store (license_agent.install_store, which the server never
imports) installs verified packages with it. It imports nothing else of ours (the key id rule
below is the same one docs/contracts.md fixes for authorization codes).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import stat
import struct
import uuid
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "tokenrent-package/1"
MANIFEST_NAME = "tokenrent/manifest.json"
SIGNATURE_NAME = "tokenrent/signature.json"
FILES_PREFIX = "files/"
PACKAGE_SUFFIX = ".trpkg"

# Limits keep a hostile archive from exhausting memory or disk before it is refused.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_FILES = 20_000
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
_CHUNK = 1024 * 1024

# Portable relative paths only: no drive letters, no backslashes, no control characters,
# nothing Windows cannot create.
_FORBIDDEN_CHARS = re.compile(r'[\x00-\x1f\\:*?"<>|]')
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
PRODUCT_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")

class PackageError(Exception):
    """Base of every refusal; str(e) is a clear one-line message."""


class MalformedPackage(PackageError):
    """Not a package, truncated, or its manifest is not valid."""


class UntrustedSigner(PackageError):
    """Signed with a key that is not the vendor's."""


class BadSignature(PackageError):
    """The manifest was changed after signing."""


class FileMismatch(PackageError):
    """A file's size or hash differs from the manifest, or files are missing or extra."""


class UnsafePath(PackageError):
    """A path that could escape the install directory or cannot be created portably."""


@dataclass(frozen=True)
class PackageFile:
    path: str           # relative, POSIX separators
    size: int
    sha256: str         # hex
    executable: bool = False


@dataclass(frozen=True)
class Manifest:
    product_id: str
    version: str
    entry: str          # command line, relative to the install directory; "{python}" = a Python 3
    files: tuple[PackageFile, ...]
    created_at: str
    format: str = FORMAT
    name: str = ""

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json_bytes(self) -> bytes:
        doc = {
            "format": self.format,
            "product_id": self.product_id,
            "version": self.version,
            "name": self.name,
            "entry": self.entry,
            "created_at": self.created_at,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256,
                       "executable": f.executable} for f in self.files],
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class VerifiedPackage:
    manifest: Manifest
    kid: str


# --- keys -------------------------------------------------------------------------------------

def kid_for(ed25519_public_raw: bytes) -> str:
    """Hex of the first 8 bytes of SHA-256 of the raw public key (the key id of docs/contracts.md)."""
    return hashlib.sha256(ed25519_public_raw).digest()[:8].hex()


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_signing_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """The vendor's Ed25519 private key from a file: PEM (PKCS#8), raw 32 bytes,
    or base64 / hex of the raw 32 bytes."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise PackageError(f"cannot read the signing key {p}: {e.strerror or e}") from None
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise PackageError(f"{p} is not an unencrypted PEM private key: {e}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise PackageError(f"{p} holds a {type(key).__name__}, not an Ed25519 key")
        return key
    raw = None
    if len(data) == 32:
        raw = data
    else:
        text = data.strip()
        decoders = (lambda t: bytes.fromhex(t.decode("ascii")), base64.b64decode,
                    base64.urlsafe_b64decode)
        for decode in decoders:
            try:
                candidate = decode(text)
            except (ValueError, UnicodeDecodeError):
                continue
            if len(candidate) == 32:
                raw = candidate
                break
    if raw is None:
        raise PackageError(f"{p} is not an Ed25519 private key (PEM, or 32 raw/base64/hex bytes)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_from_b64(public_key_b64: str) -> Ed25519PublicKey:
    """A vendor public key as the server publishes it (GET /v1/vendor-key: base64 raw Ed25519)."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as e:
        raise PackageError(f"not a base64 raw Ed25519 public key: {e}") from None


def trusted_keys_for(*public_keys: Ed25519PublicKey) -> dict[str, Ed25519PublicKey]:
    return {kid_for(_public_raw(k)): k for k in public_keys}


# --- paths ------------------------------------------------------------------------------------

def check_relative_path(path: str) -> str:
    """Return the path if it is a safe, portable relative path; raise UnsafePath otherwise."""
    if not isinstance(path, str) or not path:
        raise UnsafePath("an empty file path in the package")
    if path.startswith("/") or _FORBIDDEN_CHARS.search(path):
        raise UnsafePath(f"unsafe file path in the package: {path!r} "
                         "(absolute, or has a backslash, drive letter or control character)")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath(f"unsafe file path in the package: {path!r} (empty, '.' or '..' part)")
        if part.endswith((" ", ".")) or part.split(".")[0].lower() in _WINDOWS_RESERVED:
            raise UnsafePath(f"file path {path!r} in the package cannot be created on every system")
    return path


# --- build ------------------------------------------------------------------------------------

def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _check_manifest_fields(product_id: str, version: str, entry: str) -> None:
    if not PRODUCT_RE.match(str(product_id)):
        raise MalformedPackage(f"product id {product_id!r} is not valid (letters, digits, . _ -)")
    if not VERSION_RE.match(str(version)):
        raise MalformedPackage(f"version {version!r} is not valid (e.g. 1.0.2; letters, digits, . + _ -)")
    if not isinstance(entry, str) or not entry.strip():
        raise MalformedPackage("the entry command is empty")
    try:
        argv = shlex.split(entry)
    except ValueError as e:
        raise MalformedPackage(f"the entry command {entry!r} cannot be parsed: {e}") from None
    if not argv:
        raise MalformedPackage("the entry command is empty")


# Never packaged: byte-code caches and version-control folders.
DEFAULT_EXCLUDES = ("__pycache__", "*.pyc", ".git", ".hg", ".svn", ".DS_Store")


def _excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatchcase
    parts = rel.split("/")
    return any(fnmatchcase(part, pat) for part in parts for pat in patterns if "/" not in pat) or \
        any(fnmatchcase(rel, pat) for pat in patterns if "/" in pat)


def build_package(src_dir: str | os.PathLike, out_file: str | os.PathLike, *, product_id: str,
                  version: str, entry: str, signing_key: Ed25519PrivateKey,
                  name: str = "", exclude: tuple[str, ...] = ()) -> Manifest:
    """Pack every regular file under src_dir (except DEFAULT_EXCLUDES and `exclude`, glob
    patterns matched against each path part, or against the whole relative path when they
    contain a '/'), sign the manifest, write out_file atomically."""
    exclude = DEFAULT_EXCLUDES + tuple(exclude)
    src = Path(src_dir)
    if not src.is_dir():
        raise PackageError(f"{src} is not a directory")
    product_id = str(product_id)
    _check_manifest_fields(product_id, version, entry)
    files: list[tuple[PackageFile, Path]] = []
    seen_folded: dict[str, str] = {}
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if _excluded(rel, exclude):
            continue
        if path.is_symlink():
            raise UnsafePath(f"{path} is a symbolic link; packages hold regular files only")
        if path.is_dir():
            continue
        if not path.is_file():
            raise UnsafePath(f"{path} is not a regular file")
        check_relative_path(rel)
        folded = rel.casefold()
        if folded in seen_folded:
            raise UnsafePath(f"{rel!r} and {seen_folded[folded]!r} differ only in case")
        seen_folded[folded] = rel
        digest, size = _sha256_file(path)
        executable = bool(path.stat().st_mode & stat.S_IXUSR)
        files.append((PackageFile(rel, size, digest, executable), path))
    if not files:
        raise PackageError(f"{src} holds no files to package")
    first = shlex.split(entry)[0]
    if first != "{python}" and first not in {f.path for f, _ in files}:
        raise PackageError(f"the entry program {first!r} is not a file in {src}")
    manifest = Manifest(product_id=product_id, version=version, entry=entry, name=name,
                        files=tuple(f for f, _ in files),
                        created_at=datetime.now(UTC).replace(microsecond=0).isoformat())
    manifest_bytes = manifest.to_json_bytes()
    signature = {
        "kid": kid_for(_public_raw(signing_key.public_key())),
        "signature": base64.b64encode(signing_key.sign(manifest_bytes)).decode("ascii"),
    }
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST_NAME, manifest_bytes)
            zf.writestr(SIGNATURE_NAME, json.dumps(signature, sort_keys=True))
            for pf, path in files:
                info = zipfile.ZipInfo(FILES_PREFIX + pf.path, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (0o100755 if pf.executable else 0o100644) << 16
                with path.open("rb") as fin, zf.open(info, "w") as fout:
                    shutil.copyfileobj(fin, fout, _CHUNK)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    # The files may have changed while we read them; the package must match what we signed.
    verify_package(out, trusted_keys_for(signing_key.public_key()))
    return manifest


# --- read and verify --------------------------------------------------------------------------

# What zipfile may raise on a damaged archive (besides BadZipFile): a hostile or broken archive
# must be refused with a clear message, never crash the reader.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
               RuntimeError, struct.error, IndexError, KeyError, OverflowError)


def _open_zip(source: str | os.PathLike | bytes) -> zipfile.ZipFile:
    """The archive; the ZipFile owns (and closes) the file it opens."""
    if not isinstance(source, (bytes, bytearray)):
        try:
            with open(source, "rb"):
                pass
        except OSError as e:
            raise PackageError(f"cannot open the package {source}: {e.strerror or e}") from None
    try:
        return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except _ZIP_ERRORS as e:
        raise MalformedPackage(
            f"not a complete TokenRent package (truncated, damaged or another kind of file): {e}"
        ) from None


def _read_small(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise MalformedPackage(f"not a TokenRent package: {name} is missing") from None
    if info.file_size > limit:
        raise MalformedPackage(f"{name} is too large ({info.file_size} bytes)")
    try:
        with zf.open(info) as f:
            return f.read(limit + 1)[:limit + 1]
    except _ZIP_ERRORS as e:
        raise MalformedPackage(f"the package is damaged ({name}: {e})") from None


def _parse_manifest(data: bytes) -> Manifest:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MalformedPackage(f"the manifest is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise MalformedPackage("the manifest is not a JSON object")
    if doc.get("format") != FORMAT:
        raise MalformedPackage(f"unsupported package format {doc.get('format')!r} (expected {FORMAT})")
    try:
        product_id, version, entry = str(doc["product_id"]), doc["version"], doc["entry"]
        raw_files = doc["files"]
        created_at = str(doc.get("created_at", ""))
        name = str(doc.get("name", ""))
    except KeyError as e:
        raise MalformedPackage(f"the manifest has no {e.args[0]!r}") from None
    _check_manifest_fields(product_id, version, entry)
    if not isinstance(raw_files, list) or not raw_files:
        raise MalformedPackage("the manifest lists no files")
    if len(raw_files) > MAX_FILES:
        raise MalformedPackage(f"the manifest lists too many files ({len(raw_files)})")
    files = []
    folded: set[str] = set()
    total = 0
    for item in raw_files:
        try:
            path, size, digest = item["path"], item["size"], item["sha256"]
            executable = bool(item.get("executable", False))
        except (KeyError, TypeError):
            raise MalformedPackage(f"a file entry in the manifest is incomplete: {item!r}") from None
        check_relative_path(path)
        if path.casefold() in folded:
            raise UnsafePath(f"the manifest lists {path!r} twice (or twice differing only in case)")
        folded.add(path.casefold())
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MalformedPackage(f"bad size for {path!r} in the manifest")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise MalformedPackage(f"bad SHA-256 for {path!r} in the manifest")
        total += size
        files.append(PackageFile(path, size, digest, executable))
    if total > MAX_TOTAL_BYTES:
        raise MalformedPackage(f"the package would unpack to {total} bytes, more than allowed")
    # A directory and a file of the same name cannot both exist.
    for f in files:
        parts = f.path.casefold().split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in folded:
                raise UnsafePath(f"{f.path!r} lies under a path that the package also lists as a file")
    return Manifest(product_id=product_id, version=version, entry=entry, name=name,
                    files=tuple(files), created_at=created_at)


def looks_like_package(source: str | os.PathLike | bytes) -> bool:
    """True when the file starts the way every TokenRent package does (a ZIP whose first entry
    is tokenrent/...), even if it is truncated or damaged: such a file must be verified as a
    package and refused if it fails, never taken for some other kind of file."""
    try:
        if isinstance(source, (bytes, bytearray)):
            head = bytes(source[:64])
        else:
            with open(source, "rb") as f:
                head = f.read(64)
    except OSError:
        return False
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return False
    name_length = int.from_bytes(head[26:28], "little")
    return head[30:30 + name_length].startswith(b"tokenrent/")


def read_manifest(source: str | os.PathLike | bytes) -> Manifest:
    """The manifest WITHOUT checking the signature or files: only to show what a package claims."""
    with _open_zip(source) as zf:
        return _parse_manifest(_read_small(zf, MANIFEST_NAME, MAX_MANIFEST_BYTES))


def _verified_manifest(zf: zipfile.ZipFile,
                       trusted_keys: Mapping[str, Ed25519PublicKey]) -> tuple[Manifest, str]:
    manifest_bytes = _read_small(zf, MANIFEST_NAME, MAX_MANIFEST_BYTES)
    sig_bytes = _read_small(zf, SIGNATURE_NAME, 4096)
    try:
        sig = json.loads(sig_bytes.decode("utf-8"))
        kid, signature = str(sig["kid"]), base64.b64decode(sig["signature"], validate=True)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise MalformedPackage(f"the package signature record is not valid: {e}") from None
    key = trusted_keys.get(kid)
    if key is None:
        raise UntrustedSigner(f"the package is signed by key {kid}, which is not a trusted vendor key")
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BadSignature("the package signature does not match its manifest "
                           "(the package was changed after the vendor signed it)") from None
    manifest = _parse_manifest(manifest_bytes)
    # Nothing besides the manifest, the signature and the listed files may be in the archive.
    listed = {FILES_PREFIX + f.path for f in manifest.files}
    names = [i.filename for i in zf.infolist()]
    if len(names) != len(set(names)):
        raise FileMismatch("the package holds the same entry twice")
    for entry_name in names:
        if entry_name in (MANIFEST_NAME, SIGNATURE_NAME) or entry_name in listed:
            continue
        if entry_name.endswith("/") and entry_name.startswith(FILES_PREFIX):
            continue  # a directory record carries no data
        raise FileMismatch(f"the package holds {entry_name!r}, which its signed manifest does not list")
    return manifest, kid


def signed_manifest(source: str | os.PathLike | bytes,
                    trusted_keys: Mapping[str, Ed25519PublicKey]) -> tuple[Manifest, str]:
    """(manifest, kid) once the signature and the archive's entry list are checked, before any
    file is read: enough to decide where a package would go (verify_package checks the files)."""
    with _open_zip(source) as zf:
        return _verified_manifest(zf, trusted_keys)


def _copy_checked(zf: zipfile.ZipFile, pf: PackageFile, out) -> None:
    """Stream one file, stopping at the signed size; raise FileMismatch on any difference."""
    try:
        info = zf.getinfo(FILES_PREFIX + pf.path)
    except KeyError:
        raise FileMismatch(f"{pf.path} is listed in the manifest but missing from the package") from None
    h = hashlib.sha256()
    size = 0
    try:
        stream = zf.open(info)
    except _ZIP_ERRORS as e:
        raise FileMismatch(f"{pf.path} is damaged in the package: {e}") from None
    with stream:
        while True:
            try:
                chunk = stream.read(min(_CHUNK, pf.size - size + 1))
            except _ZIP_ERRORS as e:
                raise FileMismatch(f"{pf.path} is damaged in the package: {e}") from None
            if not chunk:
                break
            size += len(chunk)
            if size > pf.size:
                raise FileMismatch(f"{pf.path} is larger than the signed manifest says")
            h.update(chunk)
            if out is not None:
                out.write(chunk)  # a disk error here is the disk's, reported as such
    if size != pf.size:
        raise FileMismatch(f"{pf.path} is {size} bytes, the signed manifest says {pf.size}")
    if h.hexdigest() != pf.sha256:
        raise FileMismatch(f"{pf.path} does not match its signed SHA-256 (the file was changed)")


def verify_package(source: str | os.PathLike | bytes,
                   trusted_keys: Mapping[str, Ed25519PublicKey]) -> VerifiedPackage:
    """Check the signature, then every file's size and hash. Raises PackageError on any fault."""
    with _open_zip(source) as zf:
        manifest, kid = _verified_manifest(zf, trusted_keys)
        for pf in manifest.files:
            _copy_checked(zf, pf, None)
    return VerifiedPackage(manifest, kid)


def extract_package(source: str | os.PathLike | bytes, dest_dir: str | os.PathLike,
                    trusted_keys: Mapping[str, Ed25519PublicKey]) -> VerifiedPackage:
    """Verify and unpack into dest_dir, which must not exist yet. Files are unpacked into a
    hidden sibling directory and renamed into place only when every check passed, so a refused
    package leaves nothing behind."""
    dest = Path(dest_dir)
    if dest.exists():
        raise PackageError(f"{dest} already exists")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PackageError(f"cannot unpack into {dest.parent}: {e.strerror or e}") from e
    staging = dest.parent / f".incoming-{uuid.uuid4().hex}"
    try:
        with _open_zip(source) as zf:
            manifest, kid = _verified_manifest(zf, trusted_keys)
            staging.mkdir()
            root = staging.resolve()
            for pf in manifest.files:
                target = staging.joinpath(*PurePosixPath(pf.path).parts)
                # Belt and braces beside check_relative_path: never write outside the staging dir.
                if root not in target.resolve().parents:
                    raise UnsafePath(f"unsafe file path in the package: {pf.path!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "xb") as out:
                    _copy_checked(zf, pf, out)
                target.chmod(0o755 if pf.executable else 0o644)
        os.replace(staging, dest)
        return VerifiedPackage(manifest, kid)
    except OSError as e:  # the disk's fault (full, read-only, in use), not the package's
        shutil.rmtree(staging, ignore_errors=True)
        raise PackageError(f"cannot unpack into {dest.parent}: {e.strerror or e}") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
