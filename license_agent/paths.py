"""Where the agent keeps its state. All of it lives under LICENSE_AGENT_HOME."""
import hashlib
import os
from pathlib import Path

APP_NAME = "tokenrent-license-agent"
_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes on Linux


def agent_home(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("LICENSE_AGENT_HOME")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs  # only when needed: keeps the gate's start-up fast
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)).resolve()


def ensure_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    return home


def home_id(home: Path) -> str:
    """Names this home's entries in the OS keyring (several homes can share one keyring)."""
    return hashlib.sha256(str(home).encode()).hexdigest()[:16]


def database_path(home: Path) -> Path:
    return home / "state.sqlite3"


def lock_path(home: Path) -> Path:
    return home / "agent.lock"


def token_path(home: Path) -> Path:
    """Written by a daemon on the loopback TCP transport: its port and per-start token (0600)."""
    return home / "agent.token"


def read_token_file(path: Path) -> tuple[int, str] | None:
    """(port, token) from a TCP daemon's agent.token, or None if there is none (or it is unreadable)."""
    import json
    try:
        data = json.loads(path.read_text())
        return int(data["port"]), str(data["token"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def socket_path(home: Path) -> Path:
    candidate = home / "agent.sock"
    if len(str(candidate)) <= _MAX_SOCKET_PATH:
        return candidate
    import tempfile
    name = f"tokenrent-agent-{home_id(home)}.sock"
    for directory in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if directory and len(os.path.join(directory, name)) <= _MAX_SOCKET_PATH:
            return Path(directory) / name
    return Path("/tmp") / name
