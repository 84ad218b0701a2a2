"""TLS of `tokenrent-server serve --tls-cert FILE --tls-key FILE`: the files
are checked before the server starts, so a wrong path or a key that does not
match its certificate stops `serve` with one clear line, not a worker traceback."""
from __future__ import annotations

import ssl


def check_server_files(cert_file: str, key_file: str) -> None:
    """ValueError unless both files are given and load as one certificate and its key."""
    if not cert_file or not key_file:
        raise ValueError("--tls-cert and --tls-key go together (TOKENRENT_TLS_CERT_FILE, TOKENRENT_TLS_KEY_FILE)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as e:
        raise ValueError(f"TLS file not found: {e.filename}") from None
    except (ssl.SSLError, OSError) as e:
        raise ValueError(f"cannot use the TLS certificate {cert_file} with the key {key_file}: {e}") from None
