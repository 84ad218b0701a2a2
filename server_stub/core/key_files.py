"""Private Ed25519 keys in PEM (PKCS8) files outside the database: written
0600 from the first byte, fsynced, and put in place atomically, so a crash
never leaves a partial key and two processes starting at once agree on one.
Used by the code-signing key (services/signing_keys.py) and the network key
(network/keys.py)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Any group or other permission bit makes a key file refused (chmod 600).
LOOSE_MODE_BITS = 0o077


class KeyFileError(ValueError):
    """A key file that exists but must not be used (its message says why)."""


def pem_of(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def write_side(path: Path, private: Ed25519PrivateKey, tag: str) -> Path:
    """Write the key 0600 from the first byte, fsynced, to a side file next
    to `path` (same directory, so a rename or link onto `path` is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    side = path.with_name(f".{path.name}.{tag}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem_of(private))
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        side.unlink(missing_ok=True)
        raise
    return side


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_private(path: Path, private: Ed25519PrivateKey, replace: bool) -> bool:
    """Write the key 0600 from the first byte. Without `replace`, an existing
    file wins (two processes starting at once agree on one key): False."""
    tmp = write_side(path, private, "new")
    try:
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)   # atomic "create if absent"
            except FileExistsError:
                return False
        fsync_dir(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def read_private(path: Path, what: str) -> Ed25519PrivateKey:
    """The Ed25519 key in `path`. KeyFileError if the file is readable by
    others or holds anything else; OSError if it cannot be read."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_mode & LOOSE_MODE_BITS:
            raise KeyFileError(f"the {what} {path} must not be readable by others (chmod 600)")
        data = f.read()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"the {what} {path} cannot be read: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"the {what} {path} is not an Ed25519 key")
    return key
