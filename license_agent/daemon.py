"""`license-agent serve`: the agent as a daemon only this user can talk to. One JSON object per
line in each direction; see docs/agent-protocol.md. Programs in any language can speak it.

Two transports:
- ``unix`` (the default where AF_UNIX exists, i.e. not Windows): a Unix socket, mode 0600 in the
  0700 home, and the peer's uid is checked (SO_PEERCRED).
- ``tcp`` (the default on Windows; selectable everywhere with ``--transport tcp``): 127.0.0.1 on a
  port the OS picks, and a random token made at each start, written with the port to
  ``agent.token`` (0600) in the home. A client's first line must be ``{"token": "..."}``;
  any other first line, or a wrong token, is refused and the connection closed.
"""
from __future__ import annotations

import hmac
import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
from pathlib import Path

from .errors import EXIT_BAD_INPUT, EXIT_INVALID, EXIT_OK, BadInput
from .filelock import OPEN_FLAGS
from .paths import agent_home, read_token_file, socket_path, token_path
from .protocol import PROTOCOL_VERSION, dispatch

MAX_LINE = 1 << 20
HANDSHAKE_TIMEOUT = 10.0  # seconds a TCP client has to send its token
TRANSPORTS = ("unix", "tcp")


def default_transport() -> str:
    return "unix" if hasattr(socket, "AF_UNIX") and os.name != "nt" else "tcp"


def _line(response: dict) -> bytes:
    return json.dumps(response).encode() + b"\n"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        if not self.server.admit(self):
            return
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE:
                self._send({"id": None, "ok": False, "error": "bad_input", "message": "request line too long",
                            "exit_code": EXIT_BAD_INPUT})
                return
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError:
                response = {"id": None, "ok": False, "error": "bad_input", "message": "request is not valid JSON",
                            "exit_code": EXIT_BAD_INPUT}
            else:
                response = dispatch(self.server.agent, request)
            self._send(response)

    def _send(self, response: dict) -> None:
        self.wfile.write(_line(response))
        self.wfile.flush()


def _same_user(sock) -> bool:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):  # not Linux: the 0600 socket file is the guard
        return True
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


if hasattr(socketserver, "UnixStreamServer"):
    class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def admit(self, handler) -> bool:
            return _same_user(handler.request)


class _TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = False
    token = ""  # this start's handshake token, set by serve()

    def server_bind(self):
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # pragma: no cover - Windows: nobody else may bind our port
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        super().server_bind()

    def admit(self, handler) -> bool:
        """The first line must carry this start's token; anything else is refused."""
        sock = handler.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            line = handler.rfile.readline(4096)
        except OSError:
            return False
        try:
            token = json.loads(line).get("token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            try:
                handler._send({"id": None, "ok": False, "error": "bad_token", "exit_code": EXIT_INVALID,
                               "message": "the first line must be {\"token\": ...} with the token from agent.token"})
            except OSError:
                pass
            return False
        sock.settimeout(None)
        handler._send({"ok": True, "authenticated": True, "protocol": PROTOCOL_VERSION})
        return True


def write_token_file(path: Path, port: int, token: str) -> None:
    """0600 from the start (never briefly readable by others), then moved into place."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | OPEN_FLAGS, 0o600)
    try:
        os.write(fd, json.dumps({"port": port, "token": token, "pid": os.getpid(),
                                 "protocol": PROTOCOL_VERSION}).encode())
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _already_served(address) -> bool:
    from .client import DaemonConnection
    try:
        with DaemonConnection(address[0], timeout=1, token=address[1]) as other:
            return bool(other.request({"op": "ping"}).get("ok"))
    except (OSError, ValueError):
        return False


def serve(socket: str | None = None, ready: threading.Event | None = None, transport: str | None = None) -> int:
    from .agent import Agent
    home = agent_home()
    transport = transport or default_transport()
    if transport not in TRANSPORTS:
        raise BadInput(f"unknown transport {transport!r} (one of: {', '.join(TRANSPORTS)})")
    if transport == "unix" and not hasattr(socketserver, "UnixStreamServer"):
        raise BadInput("Unix sockets are not available on this platform: use --transport tcp")
    if transport == "tcp" and socket:
        raise BadInput("--socket is for the unix transport; the tcp transport picks a port itself")
    agent = Agent(home)  # verifies the state before listening
    try:
        if transport == "unix":
            server, where, cleanup = _listen_unix(Path(socket) if socket else socket_path(home))
        else:
            server, where, cleanup = _listen_tcp(home)
        server.agent = agent

        def stop(signum, frame):
            threading.Thread(target=server.shutdown, daemon=True).start()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        print(f"license-agent: serving {where} (device {agent.model.device_id}, secrets: {agent.state.store.name})",
              file=sys.stderr, flush=True)
        if ready:
            ready.set()
        try:
            server.serve_forever(poll_interval=0.5)
        finally:
            server.server_close()
            cleanup()
    finally:
        agent.close()
    return EXIT_OK


def _listen_unix(path: Path):
    if path.exists():
        if _already_served((path, None)):
            raise BadInput(f"an agent daemon already serves {path}")
        path.unlink()  # left over by a daemon that did not shut down
    old_umask = os.umask(0o177)
    try:
        server = _UnixServer(str(path), _Handler)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return server, str(path), lambda: path.unlink(missing_ok=True)


def _listen_tcp(home: Path):
    path = token_path(home)
    found = read_token_file(path)
    if found and _already_served((("127.0.0.1", found[0]), found[1])):
        raise BadInput(f"an agent daemon already serves 127.0.0.1:{found[0]} (see {path})")
    server = _TcpServer(("127.0.0.1", 0), _Handler)  # loopback only; the OS picks a free port
    server.token = os.urandom(32).hex()
    port = server.server_address[1]
    write_token_file(path, port, server.token)

    def cleanup():
        if read_token_file(path) == (port, server.token):  # not a newer daemon's file
            path.unlink(missing_ok=True)
    return server, f"127.0.0.1:{port} (token in {path})", cleanup
