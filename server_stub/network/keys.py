"""The server's network key: Ed25519, one per server, a 0600 PEM file outside
the database (`Settings.resolved_network_key_path`), created atomically on
first use; never the code-signing key. Its public half travels as text,
`ed25519:` + base64url without padding of the 32 raw bytes
(docs/mall.md "Identities and keys")."""
from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..core.key_files import KeyFileError, read_private, write_private

PUBLIC_KEY_PREFIX = "ed25519:"
# 32 bytes are 43 base64url characters without padding
_PUBLIC_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")

__all__ = ["KeyFileError", "PUBLIC_KEY_PREFIX", "load_or_create_network_key", "parse_public_key", "public_key_text"]


def load_or_create_network_key(path: Path) -> Ed25519PrivateKey:
    """The key in `path`, created (0600, atomically) if the file is absent.
    Two processes starting at once end with one key, both using it.
    Raises KeyFileError for a file readable by others or not an Ed25519
    key, OSError when it cannot be read or written."""
    path = Path(path)
    if not path.exists():
        write_private(path, Ed25519PrivateKey.generate(), replace=False)   # a concurrent winner stays
    return read_private(path, "network key")


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """The key `public_key_text` wrote; ValueError on anything else."""
    if not isinstance(text, str) or not text.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(f"a network public key starts with {PUBLIC_KEY_PREFIX!r}")
    encoded = text[len(PUBLIC_KEY_PREFIX):]
    if not _PUBLIC_KEY_TEXT.fullmatch(encoded):
        raise ValueError("a network public key is 43 base64url characters (32 bytes, no padding) "
                         f"after {PUBLIC_KEY_PREFIX!r}")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=")
    except (binascii.Error, ValueError):   # unreachable after the pattern; kept for a clear message
        raise ValueError("a network public key is not valid base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != encoded:
        raise ValueError("a network public key must be written canonically (its last character has unused bits set)")
    return Ed25519PublicKey.from_public_bytes(raw)
