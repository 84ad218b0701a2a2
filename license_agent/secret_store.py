"""Secrets of the agent: the device's X25519 private key, the journal's HMAC key and
the journal anchor. One small interface with two backends, chosen once per home:

- ``KeyringStore``: the OS keyring through ``keyring`` (Secret Service, macOS
  Keychain, Windows Credential Locker). The secrets live outside LICENSE_AGENT_HOME,
  so copying, restoring or deleting the home is detected.
- ``FileStore``: a 0600 file in the home, for machines without a working keyring.
  Weaker: someone who copies the whole home copies the secrets with it, and
  ``license-agent doctor`` says so.

The chosen backend is recorded in the home; if it later is not available the agent
refuses (it never silently switches and starts from zero).
"""
from __future__ import annotations

import base64
import json
import os
import struct
import zlib
from pathlib import Path

from .errors import SecretStoreUnavailable, Tampered
from .filelock import OPEN_FLAGS, write_at
from .paths import home_id

KEYRING_SERVICE = "tokenrent-license-agent"
BACKEND_FILE = "secret-backend"
FILE_BACKEND = "file"
SECRET_SERVICE = "keyring:SecretService"
_PROBE = "probe"


class SecretStore:
    """get/set/delete small binary secrets by name; the anchor has its own pair of calls
    because it is written after every commit and must never be half written."""

    name = "abstract"
    weaker = False
    reason = ""

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def set(self, key: str, value: bytes) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def get_anchor(self) -> dict | None:
        raw = self.get("anchor")
        return json.loads(raw) if raw else None

    def set_anchor(self, anchor: dict) -> None:
        self.set("anchor", _anchor_json(anchor))


def _anchor_json(anchor: dict) -> bytes:
    """{"mac":"...","seq":N} - the same bytes as json.dumps(sort_keys, compact), without building an
    encoder on every commit. Anything else (the set-up marker) goes through json."""
    mac, seq = anchor.get("mac"), anchor.get("seq")
    if len(anchor) == 2 and type(seq) is int and isinstance(mac, str) and mac.isalnum():
        return b'{"mac":"%s","seq":%d}' % (mac.encode(), seq)
    return json.dumps(anchor, sort_keys=True, separators=(",", ":")).encode()


class KeyringStore(SecretStore):
    """Secrets in the OS keyring through ``keyring``. For the Secret Service it keeps one D-Bus
    connection and the anchor's item (``keyring`` opens a new connection per call, which made
    every anchor update cost ~20 ms); entries stay readable by ``keyring`` and ``secret-tool``."""

    def __init__(self, backend, home: Path, collection=None):
        self._backend = backend
        self._prefix = home_id(home) + "/"
        self.name = SECRET_SERVICE if backend is None else "keyring:" + type(backend).__module__.rsplit(".", 1)[-1]
        self._cache: dict[str, bytes] = {}
        self._items: dict[str, object] = {}
        self._collection = collection if collection is not None else _secret_service_collection(backend)

    def username(self, key: str) -> str:
        return self._prefix + key

    def _session(self):
        if getattr(self, "_dh_session", None) is None:
            from secretstorage.util import open_session
            self._dh_session = open_session(self._collection.connection)
        return self._dh_session

    def _attributes(self, key: str) -> dict:
        return {"service": KEYRING_SERVICE, "username": self.username(key)}

    def get(self, key: str) -> bytes | None:
        if key in self._cache:
            return self._cache[key]
        try:
            if self._collection is not None:
                items = list(self._collection.search_items(self._attributes(key)))
                if items:
                    items[0].session = self._session()  # one encrypted session for every read
                    self._items[key] = items[0]
                text = items[0].get_secret().decode() if items else None
            else:
                text = self._backend.get_password(KEYRING_SERVICE, self.username(key))
        except Exception as exc:  # any backend failure means "cannot decide", never "empty"
            raise SecretStoreUnavailable(f"the OS keyring ({self.name}) failed: {exc}") from None
        value = base64.b64decode(text) if text is not None else None
        if value is not None and key != "anchor":
            self._cache[key] = value
        return value

    def set(self, key: str, value: bytes) -> None:
        text = base64.b64encode(value).decode()
        try:
            if self._collection is not None:
                item = self._items.get(key)
                if item is not None:
                    item.set_secret(text.encode())
                else:
                    self._collection.session = self._session()
                    self._items[key] = self._collection.create_item(
                        f"TokenRent license agent: {key}", dict(self._attributes(key), application="tokenrent"),
                        text.encode(), replace=True)
            else:
                self._backend.set_password(KEYRING_SERVICE, self.username(key), text)
        except Exception as exc:
            self._items.pop(key, None)
            raise SecretStoreUnavailable(f"the OS keyring ({self.name}) failed: {exc}") from None
        if key != "anchor":
            self._cache[key] = value

    def delete(self, key: str) -> None:
        self._cache.pop(key, None)
        self._items.pop(key, None)
        try:
            if self._collection is not None:
                for item in self._collection.search_items(self._attributes(key)):
                    item.delete()
            else:
                self._backend.delete_password(KEYRING_SERVICE, self.username(key))
        except Exception:
            pass


def _secret_service_collection(backend=None):
    """The default Secret Service collection on a kept connection, or None. Without a backend
    this talks to the Secret Service directly (secretstorage), skipping ``keyring``'s import
    and backend discovery, which cost ~0.3 s on every start of the CLI."""
    if backend is not None and not type(backend).__module__.endswith("SecretService"):
        return None
    try:
        import secretstorage
        collection = secretstorage.get_default_collection(secretstorage.dbus_init())
        if collection.is_locked():
            return None
        return collection
    except Exception:
        return None


class FileStore(SecretStore):
    """secrets.json (0600, written atomically and fsynced: it changes only at set-up) and
    anchor (0600, two checksummed slots written in turn, so a torn write leaves the older
    slot readable; an anchor that lags the journal is accepted, see state.py)."""

    name = FILE_BACKEND
    weaker = True
    reason = ("no working OS keyring backend was found, so the device key and the state anchor are "
              "kept in a 0600 file inside LICENSE_AGENT_HOME: anyone who can copy or restore that whole "
              "directory can also copy or roll back the secrets")
    _SLOT = 128

    def __init__(self, home: Path):
        self._secrets = home / "secrets.json"
        self._anchor = home / "anchor"
        self._anchor_fd: int | None = None
        self._next_slot = 0
        self._cache: dict[str, bytes] | None = None

    def _load(self) -> dict[str, bytes]:
        if self._cache is None:
            try:
                raw = json.loads(self._secrets.read_text())
            except FileNotFoundError:
                raw = {}
            except ValueError:
                raise Tampered(f"{self._secrets} is damaged") from None
            self._cache = {k: base64.b64decode(v) for k, v in raw.items()}
        return self._cache

    def get(self, key: str) -> bytes | None:
        return self._load().get(key)

    def set(self, key: str, value: bytes) -> None:
        data = dict(self._load())
        data[key] = value
        _write_durably(self._secrets, json.dumps({k: base64.b64encode(v).decode() for k, v in data.items()},
                                                 sort_keys=True).encode())
        self._cache = data

    def delete(self, key: str) -> None:
        if key in self._load():
            data = dict(self._load())
            del data[key]
            _write_durably(self._secrets, json.dumps({k: base64.b64encode(v).decode() for k, v in data.items()},
                                                     sort_keys=True).encode())
            self._cache = data

    def _slots(self) -> list[dict]:
        try:
            raw = self._anchor.read_bytes()
        except FileNotFoundError:
            return []
        found = []
        for index in range(2):
            slot = raw[index * self._SLOT:(index + 1) * self._SLOT]
            if len(slot) < 8:
                continue
            length, crc = struct.unpack(">II", slot[:8])
            body = slot[8:8 + length]
            if 0 < length <= self._SLOT - 8 and len(body) == length and zlib.crc32(body) == crc:
                try:
                    found.append((index, json.loads(body)))
                except ValueError:
                    continue
        return found

    def get_anchor(self) -> dict | None:
        slots = self._slots()
        if not slots and self._anchor.exists() and self._anchor.stat().st_size:
            raise Tampered(f"{self._anchor} is damaged")
        if not slots:
            return None
        index, best = max(slots, key=lambda item: item[1]["seq"])
        self._next_slot = 1 - index
        return best

    def set_anchor(self, anchor: dict) -> None:
        body = _anchor_json(anchor)
        slot = (struct.pack(">II", len(body), zlib.crc32(body)) + body).ljust(self._SLOT, b"\0")
        if self._anchor_fd is None:
            if not self._anchor.exists():
                _write_durably(self._anchor, slot + bytes(self._SLOT))
                self._next_slot = 1
                return
            self.get_anchor()
            self._anchor_fd = os.open(self._anchor, os.O_RDWR | OPEN_FLAGS)
        # No fsync: losing this write in a power cut only makes the anchor lag the journal,
        # which is accepted; rolling the journal back behind the anchor is what is refused.
        write_at(self._anchor_fd, slot, self._next_slot * self._SLOT)
        self._next_slot = 1 - self._next_slot


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | OPEN_FLAGS, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if os.name == "nt":  # pragma: no cover - a directory cannot be opened for fsync on Windows
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _working_keyring(home: Path, probe: bool = True):
    """The OS keyring backend if it really stores and returns a secret, else (None, why).
    The probe (store, read back, delete) is only needed when choosing a backend for a new home."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception as exc:  # pragma: no cover - keyring is a dependency
        return None, f"the keyring package cannot be imported: {exc}"
    try:
        backend = keyring.get_keyring()
    except Exception as exc:
        return None, f"no keyring backend: {exc}"
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None, f"the only keyring backend is {type(backend).__module__}.{type(backend).__name__}"
    if not probe:
        return backend, ""
    username = home_id(home) + "/" + _PROBE
    try:
        backend.set_password(KEYRING_SERVICE, username, "ok")
        works = backend.get_password(KEYRING_SERVICE, username) == "ok"
        backend.delete_password(KEYRING_SERVICE, username)
    except Exception as exc:
        return None, f"the keyring backend {type(backend).__module__} does not work: {exc}"
    if not works:
        return None, f"the keyring backend {type(backend).__module__} did not return what it stored"
    return backend, ""


def recorded_backend(home: Path) -> str | None:
    try:
        return (home / BACKEND_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def open_secret_store(home: Path) -> SecretStore:
    """The backend this home was set up with; on first use, the OS keyring if it works."""
    recorded = recorded_backend(home)
    if recorded == FILE_BACKEND:
        return FileStore(home)
    if recorded == SECRET_SERVICE:
        collection = _secret_service_collection()
        if collection is not None:
            return KeyringStore(None, home, collection=collection)
    backend, why = _working_keyring(home, probe=recorded is None)
    if recorded is not None:
        if backend is None:
            raise SecretStoreUnavailable(
                f"this agent's secrets are in the OS keyring ({recorded}), which is not usable now: {why}; "
                f"unlock the keyring or start the desktop session's Secret Service and try again")
        store = KeyringStore(backend, home)
        if store.name != recorded:
            raise SecretStoreUnavailable(f"this agent's secrets are in {recorded}, but the keyring now offers "
                                         f"{store.name}; refusing to start over")
        return store
    store: SecretStore
    if backend is None:
        store = FileStore(home)
        store.reason = FileStore.reason + f" ({why})"
    else:
        store = KeyringStore(backend, home)
    _write_durably(home / BACKEND_FILE, store.name.encode())
    return store

