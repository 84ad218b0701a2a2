"""The agent's durable state: one SQLite file (WAL, synchronous FULL) holding an
append-only journal. Every entry carries an HMAC over itself and the entry before it,
keyed by a secret from the secret store; after each commit the head (seq, mac) is
written to the store as the anchor.

On opening, the whole chain is verified and compared with the anchor:
- an entry that does not verify, or a gap  -> edited journal          -> Tampered
- the journal ends before the anchor       -> restored older copy     -> Tampered
- the entry at the anchor's seq differs    -> a different journal     -> Tampered
- the journal is gone but the anchor says there was one -> deleted    -> Tampered
- the journal is AHEAD of the anchor (with the anchored entry intact) -> accepted: that
  is a crash between commit and anchor update, and extra entries only ever record more
  consumption, which cannot help anyone cheat.
Writers are serialised by a lock on the home's lock file (flock, or msvcrt on Windows: see
filelock.py), held from BEGIN IMMEDIATE until the anchor is written, so anchors are
written in journal order.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, UTC
from pathlib import Path

from .errors import Busy, Tampered
from .filelock import OPEN_FLAGS, try_lock, unlock
from .model import Model, time_text
from .paths import database_path, ensure_home, lock_path
from .secret_store import SecretStore, open_secret_store

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq  INTEGER PRIMARY KEY,
    at   TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    mac  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_checkpoints ON journal (seq) WHERE type = 'checkpoint';
CREATE TRIGGER IF NOT EXISTS journal_is_append_only_u BEFORE UPDATE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_is_append_only_d BEFORE DELETE ON journal
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""
CHECKPOINT_EVERY = 1000  # entries; bounds the work of opening the state (the CLI does it every run)
DEVICE_KEY = "device_key"
JOURNAL_KEY = "journal_key"


def utc_now() -> datetime:
    return datetime.now(UTC)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # built once: it is on every check


def canonical(body: dict) -> str:
    return _CANONICAL.encode(body)


class State:
    """Open with State.open(home). Read ``model`` after ``refresh()``; change it only inside
    ``with state.writing() as append:`` by calling ``append(type, body)``."""

    def __init__(self, home: Path, store: SecretStore, conn: sqlite3.Connection, lock_fd: int,
                 journal_key: bytes, model: Model, head_seq: int, head_mac: bytes):
        self.home = home
        self.store = store
        self.model = model
        self._conn = conn
        self._lock_fd = lock_fd
        self._key = journal_key
        self._seq = head_seq
        self._mac = head_mac
        self._thread_lock = threading.RLock()
        self._data_version = None
        self._checkpoint_seq = 0
        self.anchor_status = "in step"

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, home: Path) -> State:
        ensure_home(home)
        lock_fd = os.open(lock_path(home), os.O_RDWR | os.O_CREAT | OPEN_FLAGS, 0o600)
        try:
            _lock(lock_fd)
            try:
                return cls._open_locked(home, lock_fd)
            finally:
                unlock(lock_fd)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _open_locked(cls, home: Path, lock_fd: int) -> State:
        store = open_secret_store(home)
        db_path = database_path(home)
        anchor = store.get_anchor()
        journal_key = store.get(JOURNAL_KEY)
        device_key = store.get(DEVICE_KEY)
        conn = _connect(db_path)
        try:
            if _journal_is_empty(conn):
                # Only a set-up interrupted before its first entry may be resumed; anything else means
                # a state that existed was deleted (or its anchor was removed to make that look innocent).
                if anchor is not None and int(anchor.get("seq", 0)) > 0:
                    raise Tampered(f"the agent's state in {home} was deleted, but {store.name} still anchors "
                                   f"{anchor['seq']} journal entries; refusing to start from zero")
                if anchor is None and device_key is not None:
                    raise Tampered(f"the agent's state in {home} is missing but its device key is still in "
                                   f"{store.name}: the state was deleted; refusing to start from zero")
                return cls._initialise(home, store, conn, lock_fd, device_key, journal_key)
            if journal_key is None or device_key is None:
                raise Tampered(f"the agent's state in {home} exists but its keys are missing from "
                               f"{store.name} (copied from elsewhere, or the keyring was reset)")
            model, head_seq, head_mac = _replay(conn, journal_key)
            state = cls(home, store, conn, lock_fd, journal_key, model, head_seq, head_mac)
            state._checkpoint_seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM journal WHERE type = 'checkpoint'").fetchone()[0]
            state._check_anchor(anchor)
            return state
        except BaseException:
            conn.close()
            raise

    @classmethod
    def _initialise(cls, home, store, conn, lock_fd, device_key, journal_key) -> State:
        from .codes import device_id_for, raw_public_x25519  # cryptography only at set-up
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        from cryptography.hazmat.primitives import serialization
        store.set_anchor({"seq": 0, "mac": ""})  # "set-up under way": lets an interrupted set-up resume
        if device_key is None:
            private = X25519PrivateKey.generate()
            device_key = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                               serialization.NoEncryption())
            store.set(DEVICE_KEY, device_key)
        if journal_key is None:
            journal_key = os.urandom(32)
            store.set(JOURNAL_KEY, journal_key)
        device_id = device_id_for(raw_public_x25519(X25519PrivateKey.from_private_bytes(device_key)))
        state = cls(home, store, conn, lock_fd, journal_key, Model(), 0, _genesis(journal_key))
        state._append_locked([("init", {"device_id": device_id, "backend": store.name, "version": 1})])
        return state

    def _check_anchor(self, anchor: dict | None) -> None:
        if anchor is None:
            raise Tampered(f"the journal's anchor is missing from {self.store.name}: the state cannot be "
                           f"proven current (restored from another copy, or the anchor was deleted)")
        anchored_seq = int(anchor["seq"])
        if anchored_seq == 0 and self._seq == 1:  # set-up wrote its first entry but not its anchor
            self.store.set_anchor({"seq": self._seq, "mac": self._mac.hex()})
            return
        if self._seq < anchored_seq:
            raise Tampered(f"the agent's state was restored from an older copy: the journal ends at entry "
                           f"{self._seq}, but entry {anchored_seq} was already recorded")
        row = self._conn.execute("SELECT mac FROM journal WHERE seq = ?", (anchored_seq,)).fetchone()
        if row is None or not hmac.compare_digest(row[0], anchor["mac"]):
            raise Tampered(f"the journal does not match its anchor at entry {anchored_seq}: "
                           f"it was replaced by a different copy")
        if self._seq > anchored_seq:
            self.anchor_status = f"caught up (anchor was {self._seq - anchored_seq} entries behind)"
            self.store.set_anchor({"seq": self._seq, "mac": self._mac.hex()})

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Takes in entries written by other processes since we last looked, verifying each."""
        with self._thread_lock:
            # data_version changes only when another connection commits: the common case of a
            # daemon that is the only writer costs one cheap pragma instead of two queries.
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return
            row = self._conn.execute("SELECT mac FROM journal WHERE seq = ?", (self._seq,)).fetchone()
            if self._seq and (row is None or not hmac.compare_digest(row[0], self._mac.hex())):
                raise Tampered(f"the journal changed under the running agent at entry {self._seq} "
                               f"(replaced or restored from an older copy)")
            rows = self._conn.execute("SELECT seq, at, type, body, mac FROM journal WHERE seq > ? ORDER BY seq",
                                      (self._seq,)).fetchall()
            if rows:
                self._seq, self._mac = _verify_rows(rows, self._key, self._seq, self._mac, self.model)
            self._data_version = version

    @property
    def head_seq(self) -> int:
        return self._seq

    def secret(self, name: str) -> bytes | None:
        return self.store.get(name)

    def verify_everything(self) -> int:
        with self._thread_lock:
            return verify_everything(self._conn, self._key)

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def writing(self):
        """Serialises writers (threads and processes), brings the model up to date, collects the
        entries the caller appends, then commits them durably and moves the anchor."""
        with self._thread_lock:
            _lock(self._lock_fd)
            try:
                self.refresh()
                pending: list[tuple[str, dict]] = []
                yield lambda kind, body: pending.append((kind, body))
                if pending:
                    self._append_locked(pending)
                    if self._seq - self._checkpoint_seq >= CHECKPOINT_EVERY:
                        self._append_locked([("checkpoint", self.model.snapshot())])
            finally:
                unlock(self._lock_fd)

    def _append_locked(self, entries: list[tuple[str, dict]]) -> None:
        moment = utc_now()
        at = time_text(moment)
        seq, mac = self._seq, self._mac
        rows = []
        for kind, body in entries:
            seq += 1
            text = canonical(body)
            mac = _mac(self._key, mac, seq, at, kind, text)
            rows.append((seq, at, kind, text, mac.hex()))
        insert = "INSERT INTO journal (seq, at, type, body, mac) VALUES (?, ?, ?, ?, ?)"
        if len(rows) == 1:
            self._conn.execute(insert, rows[0])  # autocommit: one durable (synchronous=FULL) transaction
        else:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(insert, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        # Committed and synced: only now may anyone be told "allowed".
        for (row_seq, row_at, kind, _text, _mac_hex), (_kind, body) in zip(rows, entries, strict=True):
            self.model.apply(row_seq, row_at, kind, body, at=moment)
            if kind == "checkpoint":
                self._checkpoint_seq = row_seq
        self._seq, self._mac = seq, mac
        self.store.set_anchor({"seq": seq, "mac": mac.hex()})

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            os.close(self._lock_fd)


DEFAULT_LOCK_WAIT = 30.0  # seconds; a writer holds the lock for about one fsync


def _lock(fd: int) -> None:
    """The writers' lock (license_agent.filelock), waited for at most LICENSE_AGENT_LOCK_WAIT
    seconds (default 30): a stopped or hung process must not hang every gate."""
    if try_lock(fd):
        return
    import time
    try:
        wait = float(os.environ.get("LICENSE_AGENT_LOCK_WAIT") or DEFAULT_LOCK_WAIT)
    except ValueError:
        wait = DEFAULT_LOCK_WAIT
    deadline = time.monotonic() + wait
    pause = 0.0005
    while not try_lock(fd):
        if time.monotonic() > deadline:
            raise Busy(f"another process has held the agent's state lock for over {wait:g} s "
                       f"(a stopped or hung license-agent?)") from None
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _connect(path: Path) -> sqlite3.Connection:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | OPEN_FLAGS, 0o600)
    os.close(fd)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.DatabaseError as exc:
        raise Tampered(f"the agent's state file {path} is not a valid database: {exc}") from None
    if mode.lower() != "wal":
        raise Tampered(f"cannot put {path} in WAL mode")
    return conn


def _journal_is_empty(conn: sqlite3.Connection) -> bool:
    try:
        conn.executescript(SCHEMA)
        return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM journal)").fetchone()[0] == 1
    except sqlite3.DatabaseError as exc:
        raise Tampered(f"the agent's state cannot be read: {exc}") from None


def _genesis(key: bytes) -> bytes:
    return hmac.new(key, b"tokenrent-license-agent journal v1", hashlib.sha256).digest()


def _mac(key: bytes, prev: bytes, seq: int, at: str, kind: str, body: str) -> bytes:
    message = b"".join([prev, seq.to_bytes(8, "big"), at.encode(), b"\0", kind.encode(), b"\0", body.encode()])
    return hmac.new(key, message, hashlib.sha256).digest()


def _verify_rows(rows, key: bytes, seq: int, mac: bytes, model: Model) -> tuple[int, bytes]:
    for row_seq, at, kind, body, row_mac in rows:
        if row_seq != seq + 1:
            raise Tampered(f"journal entries {seq + 1}..{row_seq - 1} are missing: the journal was edited")
        expected = _mac(key, mac, row_seq, at, kind, body)
        if not isinstance(row_mac, str) or not hmac.compare_digest(expected.hex(), row_mac):
            raise Tampered(f"journal entry {row_seq} was edited: its HMAC does not verify")
        try:
            model.apply(row_seq, at, kind, json.loads(body))
        except (KeyError, ValueError, TypeError) as exc:  # pragma: no cover - a valid MAC means we wrote it
            raise Tampered(f"journal entry {row_seq} cannot be replayed: {exc}") from None
        seq, mac = row_seq, expected
    return seq, mac


def _replay(conn: sqlite3.Connection, key: bytes) -> tuple[Model, int, bytes]:
    """Verifies and replays the journal from its latest checkpoint (or from the start). The
    checkpoint's MAC chains to the entry before it, so it cannot be forged or moved; entries
    before it are no longer needed to decide (doctor still verifies them all)."""
    try:
        start = conn.execute("SELECT MAX(seq) FROM journal WHERE type = 'checkpoint'").fetchone()[0] or 1
        if start > 1:
            before = conn.execute("SELECT mac FROM journal WHERE seq = ?", (start - 1,)).fetchone()
            if before is None:
                raise Tampered(f"journal entry {start - 1} is missing: the journal was edited")
            seq, mac = start - 1, bytes.fromhex(before[0])
        else:
            seq, mac = 0, _genesis(key)
        rows = conn.execute("SELECT seq, at, type, body, mac FROM journal WHERE seq >= ? ORDER BY seq",
                            (start,)).fetchall()
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise Tampered(f"the agent's state cannot be read: {exc}") from None
    model = Model()
    seq, mac = _verify_rows(rows, key, seq, mac, model)
    if seq == 0:
        raise Tampered("the agent's journal is empty: it was truncated")
    return model, seq, mac


def verify_everything(conn: sqlite3.Connection, key: bytes) -> int:
    """The whole chain from the first entry (doctor): returns the number of entries verified."""
    rows = conn.execute("SELECT seq, at, type, body, mac FROM journal ORDER BY seq").fetchall()
    seq, _mac = _verify_rows(rows, key, 0, _genesis(key), Model())
    return seq
