"""Password/PIN hashing (argon2id) and session tokens. Secrets never leave
this module in clear: only hashes are stored, nothing here logs."""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
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


def _pin_hasher() -> PasswordHasher:
    s = get_settings()
    return _hasher(s.pin_argon2_time_cost, s.pin_argon2_memory_kib, 1)


_peppers: dict[str, bytes] = {}


def pin_pepper() -> bytes:
    """The server's PIN pepper (32 random bytes in a 0600 file, created once;
    every process and host sharing the database must use the same file)."""
    path = get_settings().resolved_pin_pepper_path
    key = _peppers.get(str(path))
    if key is None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
            try:
                os.link(tmp, path)  # atomic; loses cleanly to a concurrent creator
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        key = path.read_bytes()
        if len(key) != 32:
            raise RuntimeError(f"PIN pepper file {path} is not 32 bytes")
        _peppers[str(path)] = key
    return key


def _peppered(pin: str) -> str:
    return hmac.new(pin_pepper(), pin.encode("utf-8"), hashlib.sha256).hexdigest()


def hash_pin(pin: str) -> str:
    return _pin_hasher().hash(_peppered(pin))


# PINs this process has verified, as HMACs of (stored hash, PIN) under a key that never leaves
# memory: the same user's same PIN is not put through argon2 again on every transfer. Only a
# match is remembered (every wrong PIN pays argon2 and is counted by the lockout); a new PIN has
# a new hash, so an old PIN no longer matches. What the cache holds is no easier to attack than
# what the process already holds (the pepper, with which the stored hashes fall to a search of
# the few PINs there are).
_VERIFIED_PINS_MAX = 10_000
_verified_pins_key = secrets.token_bytes(32)
_verified_pins: dict[bytes, None] = {}
_verified_pins_lock = threading.Lock()


def _pin_tag(stored_hash: str, pin: str) -> bytes:
    return hmac.new(_verified_pins_key, f"{stored_hash}\0{pin}".encode(), hashlib.sha256).digest()


def verify_pin(stored_hash: str, pin: str) -> bool:
    tag = _pin_tag(stored_hash, pin)
    if tag in _verified_pins:
        return True
    try:
        ok = _pin_hasher().verify(stored_hash, _peppered(pin))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if ok:
        with _verified_pins_lock:
            if len(_verified_pins) >= _VERIFIED_PINS_MAX:
                _verified_pins.pop(next(iter(_verified_pins)))   # the oldest
            _verified_pins[tag] = None
    return ok


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
