"""Resumable downloads: HTTP Range, SHA-256 check, pause/resume, survives restart.

State on disk, next to the partial file:
    <dest>.part       the bytes received so far
    <dest>.part.json  {url, etag, total_size, expected_sha256}
A download that is paused, loses the network, or whose app is closed resumes
from the bytes already on disk (If-Range keeps a changed file from being
spliced onto an old one). The file is renamed to <dest> only after its size
and SHA-256 match. Blocking: run it on a worker thread.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import requests
import urllib3

from desktop_app.api.tls import ca_verify

CHUNK = 1024 * 1024
CHECKPOINT_BYTES = 32 * 1024 * 1024   # how often the hash state is written down while receiving


class DownloadError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.user_message = message


class DownloadPaused(Exception):
    user_message = "The download is paused."


class ChecksumMismatch(DownloadError):
    pass


class SessionEnded(DownloadError):
    """The server answered 401: sign in again, then the download continues from its bytes."""


@dataclass
class Progress:
    received: int
    total: int | None

    @property
    def fraction(self) -> float | None:
        return self.received / self.total if self.total else None


def sha256_of(path: Path, chunk: int = 1024 * 1024) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _header_sha256(resp: requests.Response) -> str | None:
    value = resp.headers.get("X-Checksum-SHA256") or resp.headers.get("X-Content-SHA256")
    if value:
        return value.strip().lower()
    for name in ("Repr-Digest", "Digest"):  # RFC 9530 / RFC 3230
        digest = resp.headers.get(name, "")
        for part in digest.split(","):
            key, _, val = part.strip().partition("=")
            if key.lower() == "sha-256" and val:
                try:
                    return base64.b64decode(val.strip(":")).hex()
                except ValueError:
                    pass
    return None


class _SavableSha256:
    """SHA-256 whose running state can be written down and picked up after a restart, so a
    resumed download does not read and hash again what is already on disk. Uses OpenSSL's
    SHA256_CTX through ctypes (the same OpenSSL code hashlib uses); the saved state names the
    OpenSSL version and is only taken back by that same version. Where libcrypto cannot be
    loaded, ``snapshot()`` gives None and the old way (hash the part again) applies."""

    _lib: Any = None     # the loaded libcrypto, False when it is not there, None before the first look
    _version = b""
    CTX_SIZE = 256          # SHA256_CTX is 112 bytes; room to spare, treated as opaque

    @classmethod
    def available(cls) -> bool:
        if cls._lib is None:
            import ctypes
            import ctypes.util
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
                lib.OpenSSL_version.restype = ctypes.c_char_p
                lib.SHA256_Init.argtypes = [ctypes.c_void_p]
                lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
                lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
                cls._version = lib.OpenSSL_version(0) or b""
                cls._lib = lib
            except (OSError, AttributeError):
                cls._lib = False
        return bool(cls._lib)

    def __init__(self, ctx_bytes: bytes | None = None):
        import ctypes
        if not self.available():
            raise RuntimeError("libcrypto is not available")
        self._ctypes = ctypes
        self._ctx = ctypes.create_string_buffer(self.CTX_SIZE)
        if ctx_bytes is None:
            self._lib.SHA256_Init(self._ctx)
        else:
            ctypes.memmove(self._ctx, ctx_bytes, self.CTX_SIZE)

    def update(self, block) -> None:
        self._lib.SHA256_Update(self._ctx, bytes(block), len(block))

    def hexdigest(self) -> str:
        ctx = self._ctypes.create_string_buffer(self._ctx.raw, self.CTX_SIZE)   # Final spoils ctx
        out = self._ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctx)
        return out.raw.hex()

    def snapshot(self) -> dict:
        return {"openssl": self._version.decode("ascii", "replace"), "ctx": self._ctx.raw.hex()}

    @classmethod
    def restore(cls, saved: dict | None) -> _SavableSha256 | None:
        if not saved or not cls.available() or saved.get("openssl") != cls._version.decode("ascii", "replace"):
            return None
        try:
            ctx = bytes.fromhex(saved["ctx"])
        except (KeyError, ValueError, TypeError):
            return None
        return cls(ctx) if len(ctx) == cls.CTX_SIZE else None


def _new_sha256():
    return _SavableSha256() if _SavableSha256.available() else hashlib.sha256()


class _Hasher:
    """SHA-256 on its own thread, so hashing overlaps with receiving (the hash releases the GIL).
    Fed in file order: first bytes already on disk (``existing`` from ``start`` to ``upto``),
    then each block as it arrives."""

    def __init__(self, existing: Path | None = None, upto: int = 0, *, start: int = 0, initial=None):
        import queue
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._hash = initial if initial is not None else _new_sha256()
        self.count = start                  # bytes hashed so far (on the hashing thread)
        self._existing = existing
        self._start = start
        self._upto = upto     # the file grows meanwhile: hash only what was there at the start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        if self._existing is not None and self._existing.exists() and self._upto > self._start:
            left = self._upto - self._start
            with open(self._existing, "rb") as f:
                f.seek(self._start)
                while left > 0 and (block := f.read(min(left, 1024 * 1024))):
                    self._hash.update(block)
                    self.count += len(block)
                    left -= len(block)
            if left:
                self._hash.update(b"\0")   # the file shrank under us: make the check fail
        while True:
            block = self._queue.get()
            try:
                if block is None:
                    return
                self._hash.update(block)
                self.count += len(block)
            finally:
                self._queue.task_done()

    def update(self, block: bytes) -> None:
        self._queue.put(block)

    def checkpoint(self) -> dict | None:
        """{bytes, state} for everything fed so far (waits for the hashing thread), or None
        when this hash cannot be saved."""
        if not hasattr(self._hash, "snapshot"):
            return None
        self._queue.join()
        return {"bytes": self.count, **self._hash.snapshot()}

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return self._hash.hexdigest()

    def abandon(self) -> None:
        self._queue.put(None)


class Download:
    """One file. ``run()`` downloads until done, paused, or failed."""

    def __init__(self, url: str, dest: Path, *, expected_sha256: str | None = None,
                 expected_size: int | None = None, headers: dict | None = None,
                 retries: int = 5, retry_wait: float = 0.5, timeout: float = 15.0,
                 session: requests.Session | None = None, chunk_size: int = CHUNK):
        self.url = url
        self.dest = Path(dest)
        self.part = self.dest.with_name(self.dest.name + ".part")
        self.state_file = self.dest.with_name(self.dest.name + ".part.json")
        self.expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        self.expected_size = expected_size
        self._given = (self.expected_sha256, expected_size)   # from the caller (the store's metadata)
        self.headers = dict(headers or {})
        self.retries = retries
        self.retry_wait = retry_wait
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.session = session or requests.Session()
        self._pause = threading.Event()
        self._kept: tuple[_Hasher, int] | None = None      # (hasher, bytes) while paused in this session
        self._hasher: _Hasher | None = None
        self.on_progress: Callable[[Progress], None] | None = None

    # -- control (any thread) ---------------------------------------------
    def pause(self) -> None:
        self._pause.set()

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def received_bytes(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def _load_state(self) -> dict:
        try:
            state = json.loads(self.state_file.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return state if state.get("url") == self.url else {}

    def _save_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), "utf-8")
        os.replace(tmp, self.state_file)

    def discard(self) -> None:
        for p in (self.part, self.state_file):
            p.unlink(missing_ok=True)

    # -- the work (worker thread) ------------------------------------------
    def run(self) -> Path:
        """Returns the verified file. Raises DownloadPaused or DownloadError."""
        self._pause.clear()
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        if self.dest.exists() and self._verified(self.dest):
            return self.dest
        state = self._load_state()
        if not state:
            self.discard()
        self.expected_sha256 = self.expected_sha256 or state.get("expected_sha256")
        if self.expected_size is None:
            self.expected_size = state.get("total_size")
        received = self.received_bytes()
        kept, self._kept = self._kept, None
        if kept is not None and kept[1] == received and state:
            hasher = kept[0]      # paused in this session: the hash so far is still in memory
        else:
            if kept is not None:
                kept[0].abandon()
            hasher = self._resumed_hasher(state, received)
        self._hasher = hasher
        failures = 0
        try:
            while True:
                try:
                    hasher, received = self._fetch(state, hasher, received)
                    break
                except DownloadPaused:
                    current = self._hasher or hasher   # _fetch replaces it when it starts over
                    self._kept = (current, self.received_bytes())
                    self._save_hash_state(state, current)
                    raise
                except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                        urllib3.exceptions.HTTPError) as exc:
                    failures += 1
                    if failures > self.retries:
                        raise DownloadError("The download stopped: the server cannot be reached. "
                                            "It will continue from where it stopped.") from exc
                    if self._pause.wait(min(self.retry_wait * 2 ** (failures - 1), 10)):
                        raise DownloadPaused() from None
                    # re-sync with the disk: the bytes counted are the bytes written
                    hasher.abandon()
                    received = self.received_bytes()
                    hasher = self._hasher = _Hasher(self.part if received else None, received)
        except DownloadPaused:
            raise
        except BaseException:
            if self._hasher is not None:
                self._hasher.abandon()
            raise
        return self._finish(hasher.hexdigest(), received, state)

    def _resumed_hasher(self, state: dict, received: int) -> _Hasher:
        """After a restart: continue from the saved hash state and hash only the bytes written
        after it; without a usable saved state, hash the whole part again (on the hashing
        thread, while the rest is being received)."""
        saved = state.get("hash_state") or {}
        restored = _SavableSha256.restore(saved)
        start = int(saved.get("bytes", -1)) if restored is not None else -1
        if restored is not None and 0 <= start <= received:
            return _Hasher(self.part, received, start=start, initial=restored)
        return _Hasher(self.part if received else None, received)

    def _save_hash_state(self, state: dict, hasher: _Hasher) -> None:
        checkpoint = hasher.checkpoint() if hasher is not None else None
        if checkpoint is not None and state:
            state["hash_state"] = checkpoint
            self._save_state(state)

    def _fetch(self, state: dict, hasher: _Hasher, received: int) -> tuple[_Hasher, int]:
        headers = dict(self.headers)
        headers["Accept-Encoding"] = "identity"   # the bytes on the wire are the file's bytes
        if received:
            headers["Range"] = f"bytes={received}-"
            if state.get("etag"):
                headers["If-Range"] = state["etag"]
        with self.session.get(self.url, headers=headers, stream=True, timeout=self.timeout,
                              verify=ca_verify()) as resp:
            if resp.status_code == 416 and received:
                # Range not satisfiable: we may already have everything
                total = state.get("total_size")
                if total is not None and received >= total:
                    return hasher, received
                self.discard()
                raise requests.ConnectionError("range refused; restarting")
            if resp.status_code == 401:
                raise SessionEnded("Your session has ended. Sign in again and the download continues.")
            if resp.status_code == 404:
                raise DownloadError("The file to download was not found on the server.")
            if resp.status_code >= 400:
                raise DownloadError(f"The server refused the download ({resp.status_code}).")
            if resp.status_code == 200 and received:
                # the server ignored the Range (or the file changed): start over
                received = 0
                hasher.abandon()
                hasher = self._hasher = _Hasher()
                # what we knew described the old file: only the caller's figures still hold
                self.expected_sha256, self.expected_size = self._given
                state.pop("expected_sha256", None)
                state.pop("total_size", None)
                state.pop("hash_state", None)
            total = None
            if resp.status_code == 206:
                content_range = resp.headers.get("Content-Range", "")
                if "/" in content_range and not content_range.endswith("/*"):
                    total = int(content_range.rsplit("/", 1)[1])
            elif resp.headers.get("Content-Length"):
                total = int(resp.headers["Content-Length"])
            state.update(url=self.url, etag=resp.headers.get("ETag") or state.get("etag"),
                         total_size=total if total is not None else state.get("total_size"),
                         expected_sha256=self.expected_sha256 or _header_sha256(resp)
                         or state.get("expected_sha256"))
            if state["expected_sha256"] and not self.expected_sha256:
                self.expected_sha256 = state["expected_sha256"]
            if self.expected_size is None and state.get("total_size") is not None:
                self.expected_size = state["total_size"]
            self._save_state(state)
            mode = "ab" if received else "wb"
            with open(self.part, mode) as out:
                self._report(received, state.get("total_size"))
                read = resp.raw.read
                next_checkpoint = received + CHECKPOINT_BYTES
                while block := read(self.chunk_size):
                    out.write(block)
                    hasher.update(block)
                    received += len(block)
                    if received >= next_checkpoint:   # so even a killed app resumes cheaply
                        out.flush()
                        self._save_hash_state(state, hasher)
                        next_checkpoint = received + CHECKPOINT_BYTES
                    self._report(received, state.get("total_size"))
                    if self._pause.is_set():
                        raise DownloadPaused()
            # No fsync: after a crash a damaged tail is caught by the SHA-256 check and the
            # download starts over; it never turns into an installed program.
            if state.get("total_size") is not None and received < state["total_size"]:
                raise requests.ConnectionError("connection closed early")
            return hasher, received

    def _report(self, received: int, total: int | None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(received, total))

    def _verified(self, path: Path) -> bool:
        if self.expected_sha256 is None:
            return False
        if self.expected_size is not None and path.stat().st_size != self.expected_size:
            return False
        return sha256_of(path) == self.expected_sha256

    def _finish(self, digest: str, received: int, state: dict) -> Path:
        if self.expected_size is not None and received != self.expected_size:
            self.discard()
            raise ChecksumMismatch(f"The download has the wrong size ({received:,} bytes, "
                                   f"expected {self.expected_size:,}); it was discarded.")
        if self.expected_sha256 is None:
            self.discard()
            raise DownloadError("The server gave no SHA-256 for this file, so it cannot be checked; "
                                "it was not installed.")
        if digest != self.expected_sha256:
            self.discard()
            raise ChecksumMismatch("The downloaded file is damaged (its SHA-256 does not match); "
                                   "it was discarded. Please download it again.")
        os.replace(self.part, self.dest)
        self.state_file.unlink(missing_ok=True)
        return self.dest
