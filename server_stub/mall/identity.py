"""The MSP's own network key (its id in signatures and entries is `msp`): a
0600 PEM file outside the database, `Settings.resolved_network_key_path`,
created atomically on first use by server_stub.network.keys. `msp serve` and
`msp admin` default it to `<data_dir>/msp_network_key.pem`, so a vendor
and an MSP sharing a data dir never share a key."""
from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..core.config import get_settings
from ..network.keys import load_or_create_network_key, public_key_text

KEY_FILE_NAME = "msp_network_key.pem"

_keys: dict[Path, Ed25519PrivateKey] = {}
_lock = threading.Lock()


def msp_key() -> Ed25519PrivateKey:
    """The key of the configured path, read once per process."""
    path = get_settings().resolved_network_key_path
    with _lock:
        key = _keys.get(path)
        if key is None:
            key = _keys[path] = load_or_create_network_key(path)
        return key


def msp_public_text() -> str:
    return public_key_text(msp_key())
