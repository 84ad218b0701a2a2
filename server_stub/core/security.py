"""Password/PIN hashing (argon2id) and session tokens. Secrets never leave
this module in clear: only hashes are stored, nothing here logs."""
from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .config import get_settings


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher() -> PasswordHasher:
    s = get_settings()
    return _hasher(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)


def hash_secret(secret: str) -> str:
    return hasher().hash(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    try:
        return hasher().verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A fixed dummy hash so an unknown username costs as much as a wrong password
# (no user enumeration by timing).
_DUMMY_HASH: str | None = None


def burn_verify_time(secret: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_secret("not-a-real-password")
    verify_secret(_DUMMY_HASH, secret)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Sessions are looked up by this digest; a leaked database holds no usable token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
