"""The Python SDK for rented programs.

    from license_agent import client
    answer = client.check("4")                 # the gate before a run; raises client.Denied
    with client.processing("4", 1) as held:     # reserve, then commit on success / release on error
        do_the_work()
    with client.run("4") as answer: ...         # check once for a run (context manager)

It talks to `license-agent serve` when that daemon runs for LICENSE_AGENT_HOME and
otherwise works in-process on the same state (same answers, same rules, same file lock).
"""
from __future__ import annotations

import json
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .errors import (EXIT_DENIED, EXIT_INVALID, AgentError, BadInput, Busy, InvalidCode, SecretStoreUnavailable,
                     Tampered)
from .gate import DEFAULT_RESERVATION_TTL
from .paths import agent_home, read_token_file, socket_path, token_path

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["Answer", "AgentError", "Denied", "ClockBehind", "Tampered", "InvalidCode", "BadInput", "Client",
           "Reservation", "check", "consume", "reserve", "commit", "release", "status", "device", "run",
           "processing", "mode", "default_client"]


class Answer(dict):
    """A JSON answer; keys are also attributes (answer.remaining, answer.warning, ...)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Denied(AgentError):
    """The license does not allow this (exit code 3): expired, used up, or none installed."""

    exit_code = EXIT_DENIED
    code = "denied"

    def __init__(self, answer: Answer):
        super().__init__(answer.get("message", "denied"))
        self.answer = answer
        self.store_url = answer.get("store_url")


class ClockBehind(AgentError):
    """A time rental refused because the clock was moved back (exit code 4)."""

    exit_code = EXIT_INVALID
    code = "clock_behind"

    def __init__(self, answer: Answer):
        super().__init__(answer.get("message", "the clock is behind"))
        self.answer = answer
        self.store_url = answer.get("store_url")


_ERRORS = {"bad_input": BadInput, "malformed_code": BadInput, "tampered": Tampered,
           "secret_store_unavailable": SecretStoreUnavailable, "busy": Busy,
           **{code: InvalidCode for code in ("invalid_code", "older_serial", "conflicting_code", "issued_in_future",
                                             "untrusted_signer", "bad_signature", "wrong_device", "decryption_failed",
                                             "unsupported_version", "no_mall_key", "bad_entry_signature",
                                             "member_not_active", "bad_entry_keys", "stale_entry",
                                             "conflicting_entry")},
           **{code: BadInput for code in ("malformed_entry", "bad_mall_key", "mall_key_conflict", "ambiguous_product")}}


def _check_peer_is_us(sock) -> None:
    """A daemon run by another user (e.g. squatting the socket path in /tmp) is not our agent."""
    import struct
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):  # not Linux: the 0600 socket in the 0700 home is the guard
        return
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        raise PermissionError(f"the socket is served by uid {uid}, not by this user")


HANDSHAKE_TIMEOUT = 5.0  # seconds for a TCP daemon to confirm the token


class DaemonConnection:
    """One connection to the daemon; requests are JSON lines. ``address`` is the Unix socket's
    path, or ``(host, port)`` for the loopback TCP transport, which needs the ``token`` from the
    home's agent.token (sent as the first line; the daemon confirms it or closes)."""

    def __init__(self, address, timeout: float = 30.0, token: str | None = None):
        tcp = isinstance(address, tuple)
        self.address = f"{address[0]}:{address[1]}" if tcp else str(address)
        self._sock = socket.socket(socket.AF_INET if tcp else socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        reader: IO[bytes] | None = None
        try:
            self._sock.connect(address if tcp else str(address))
            if tcp:
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # A port taken over by something else after a daemon died may never answer:
                # the real daemon confirms the token at once, so do not wait the full timeout.
                self._sock.settimeout(min(timeout, HANDSHAKE_TIMEOUT))
                reader = self._sock.makefile("rb")
                self._sock.sendall(json.dumps({"token": token}).encode() + b"\n")
                try:
                    hello = json.loads(reader.readline() or b"{}")
                except ValueError:
                    hello = {}
                if not (isinstance(hello, dict) and hello.get("ok") and hello.get("authenticated")):
                    raise PermissionError(f"the daemon at {address[0]}:{address[1]} refused the token "
                                          f"({hello.get('message', 'no answer') if isinstance(hello, dict) else hello})")
                self._sock.settimeout(timeout)
            else:
                _check_peer_is_us(self._sock)
        except (OSError, ValueError):
            if reader:
                reader.close()
            self._sock.close()
            raise
        self._reader: IO[bytes] = reader if reader is not None else self._sock.makefile("rb")
        self._next_id = 0

    @classmethod
    def for_home(cls, home: Path, timeout: float = 30.0) -> DaemonConnection:
        """The daemon serving this home: its Unix socket, else the TCP port in its token file.
        Raises OSError when no daemon answers there."""
        errors = []
        if hasattr(socket, "AF_UNIX") and os.name != "nt":
            try:
                return cls(socket_path(home), timeout)
            except OSError as exc:
                errors.append(exc)
        found = read_token_file(token_path(home))
        if found is not None:
            return cls(("127.0.0.1", found[0]), timeout, token=found[1])
        raise errors[0] if errors else FileNotFoundError(f"no agent daemon for {home}")

    def request(self, request: dict) -> dict:
        self._next_id += 1
        request = dict(request, id=self._next_id)
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        line = self._reader.readline()
        if not line:
            raise ConnectionError("the license agent daemon closed the connection")
        return json.loads(line)

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Client:
    def __init__(self, home: str | Path | None = None, *, use_daemon: bool = True, timeout: float = 30.0):
        self.home = agent_home(home)
        self._use_daemon = use_daemon
        self._timeout = timeout
        self._lock = threading.Lock()
        self._daemon: DaemonConnection | None = None
        self._agent: Agent | None = None

    @property
    def mode(self) -> str:
        """"daemon" or "in-process" (after the first call)."""
        with self._lock:
            self._connect()
            return "daemon" if self._daemon else "in-process"

    def _connect(self) -> None:
        if self._daemon or self._agent:
            return
        if self._use_daemon:
            try:
                self._daemon = DaemonConnection.for_home(self.home, self._timeout)
                return
            except OSError:
                pass  # no daemon: work on the state directly
        from .agent import Agent
        self._agent = Agent(self.home)

    def _request(self, request: dict) -> dict:
        with self._lock:
            self._connect()
            if self._daemon:
                try:
                    return self._daemon.request(request)
                except (OSError, ValueError) as exc:
                    self._daemon.close()
                    self._daemon = None  # the next call reconnects or falls back to in-process
                    raise AgentError(f"lost the connection to the license agent daemon ({exc}); "
                                     f"the request may or may not have been applied", "daemon_lost") from None
            from .protocol import dispatch
            return json.loads(json.dumps(dispatch(self._agent, request)))  # the same JSON as the daemon's

    def _call(self, op: str, raise_denied: bool = True, **fields) -> Answer:
        response = self._request({"op": op, **{k: v for k, v in fields.items() if v is not None}})
        if not response.get("ok"):
            error = _ERRORS.get(str(response.get("error")), AgentError)
            exc = error(response.get("message", "the license agent refused"))
            exc.code = response.get("error", exc.code)
            exc.exit_code = response.get("exit_code", exc.exit_code)
            raise exc
        answer = Answer(response["result"])
        if raise_denied and response.get("exit_code") == EXIT_DENIED:
            raise Denied(answer)
        if raise_denied and response.get("exit_code") == EXIT_INVALID and answer.get("clock_behind"):
            raise ClockBehind(answer)
        return answer

    # -- the gate --------------------------------------------------------------------------
    def check(self, product_id, *, raise_denied: bool = True) -> Answer:
        return self._call("check", raise_denied, product_id=str(product_id))

    def consume(self, product_id, n: int = 1, *, raise_denied: bool = True) -> Answer:
        return self._call("consume", raise_denied, product_id=str(product_id), n=n)

    def reserve(self, product_id, n: int = 1, ttl: int = DEFAULT_RESERVATION_TTL) -> Reservation:
        return Reservation(self, self._call("reserve", True, product_id=str(product_id), n=n, ttl=ttl))

    def commit(self, reservation_id: str, n: int | None = None) -> Answer:
        return self._call("commit", False, reservation_id=reservation_id, n=n)

    def release(self, reservation_id: str) -> Answer:
        return self._call("release", False, reservation_id=reservation_id)

    def status(self) -> Answer:
        return self._call("status")

    def install(self, code: str) -> Answer:
        return self._call("install", code=code)

    def trust(self, public_key_b64: str) -> Answer:
        return self._call("trust", public_key=public_key_b64)

    def trust_mall(self, msp_key: str, replace: bool = False) -> Answer:
        return self._call("trust_mall", msp_key=msp_key, replace=replace)

    def trust_entry(self, entry: str) -> Answer:
        return self._call("trust_entry", entry=entry)

    def device(self) -> Answer:
        return self._call("device")

    @contextmanager
    def run(self, product_id):
        """The gate for one run of the program: raises Denied before the body if not allowed."""
        yield self.check(product_id)

    @contextmanager
    def processing(self, product_id, n: int = 1, ttl: int = DEFAULT_RESERVATION_TTL):
        """Holds n processings for the body: committed if it succeeds, released if it raises."""
        reservation = self.reserve(product_id, n, ttl)
        with reservation:
            yield reservation

    def close(self) -> None:
        with self._lock:
            if self._daemon:
                self._daemon.close()
                self._daemon = None
            if self._agent:
                self._agent.close()
                self._agent = None


class Reservation:
    """reserve(n) -> commit() / commit(m <= n) / release(). Held amounts count as consumed if
    neither happens within the time-to-live."""

    def __init__(self, client: Client, answer: Answer):
        self._client = client
        self.answer = answer
        self.reservation_id = answer.get("reservation_id")
        self.done: Answer | None = None

    def __getattr__(self, name):
        try:
            return self.answer[name]
        except KeyError:
            raise AttributeError(name) from None

    def commit(self, n: int | None = None) -> Answer:
        if self.done is None:
            self.done = (self._client.commit(self.reservation_id, n) if self.reservation_id
                         else Answer(self.answer, outcome="committed"))  # permanent/time: nothing held
        return self.done

    def release(self) -> Answer:
        if self.done is None:
            self.done = (self._client.release(self.reservation_id) if self.reservation_id
                         else Answer(self.answer, outcome="released"))
        return self.done

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.release()
        return False


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """One client per process for LICENSE_AGENT_HOME (read at first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def check(product_id, **kwargs) -> Answer:
    return default_client().check(product_id, **kwargs)


def consume(product_id, n: int = 1, **kwargs) -> Answer:
    return default_client().consume(product_id, n, **kwargs)


def reserve(product_id, n: int = 1, ttl: int = DEFAULT_RESERVATION_TTL) -> Reservation:
    return default_client().reserve(product_id, n, ttl)


def commit(reservation_id: str, n: int | None = None) -> Answer:
    return default_client().commit(reservation_id, n)


def release(reservation_id: str) -> Answer:
    return default_client().release(reservation_id)


def status() -> Answer:
    return default_client().status()


def device() -> Answer:
    return default_client().device()


def run(product_id):
    return default_client().run(product_id)


def processing(product_id, n: int = 1, ttl: int = DEFAULT_RESERVATION_TTL):
    return default_client().processing(product_id, n, ttl)


def mode() -> str:
    return default_client().mode
