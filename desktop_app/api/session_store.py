"""Keeps the session token in the OS keyring where one works.

Where no keyring backend works the token stays in memory only: the user signs
in again next time, and the token is never written to a plain file.
"""
from __future__ import annotations

SERVICE = "tokenrent"


def _key(server_url: str, username: str) -> str:
    return f"session:{server_url}:{username}"


def keyring_works() -> bool:
    try:
        import keyring
        backend = keyring.get_keyring()
    except Exception:
        return False
    name = type(backend).__module__ + "." + type(backend).__name__
    return not any(bad in name for bad in ("fail.Keyring", "null.Keyring", "chainer.ChainerBackend")) \
        or _chainer_has_backends(backend)


def _chainer_has_backends(backend) -> bool:
    return bool(getattr(backend, "backends", None))


class SessionStore:
    def __init__(self):
        self._memory: dict[str, str] = {}

    def save(self, server_url: str, username: str, token: str) -> bool:
        """Returns True when the token went to the keyring."""
        self._memory[_key(server_url, username)] = token
        if not keyring_works():
            return False
        try:
            import keyring
            keyring.set_password(SERVICE, _key(server_url, username), token)
            return True
        except Exception:  # any keyring failure: memory only
            return False

    def load(self, server_url: str, username: str) -> str | None:
        key = _key(server_url, username)
        if key in self._memory:
            return self._memory[key]
        if not keyring_works():
            return None
        try:
            import keyring
            return keyring.get_password(SERVICE, key)
        except Exception:  # any keyring failure: memory only
            return None

    def forget(self, server_url: str, username: str) -> None:
        key = _key(server_url, username)
        self._memory.pop(key, None)
        if keyring_works():
            try:
                import keyring
                keyring.delete_password(SERVICE, key)
            except Exception:  # any keyring failure: memory only
                pass
