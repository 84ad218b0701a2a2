"""Server settings: one frozen object, read from TOKENRENT_* environment
variables (so every uvicorn worker sees the same values) and overridable by
the CLI, which writes the environment before starting the workers."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import platformdirs

ENV_PREFIX = "TOKENRENT_"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("tokenrent-server", "TokenRent"))


@dataclass(frozen=True)
class Settings:
    db_url: str = ""                     # empty: SQLite file in data_dir
    data_dir: str = ""                   # empty: the platform's user data dir
    signing_key_path: str = ""           # empty: <data_dir>/vendor_signing_key.pem
    # The mall network's Ed25519 key (signs server-to-server calls), never the
    # code-signing key above (docs/mall.md "Identities and keys").
    network_key_path: str = ""           # empty: <data_dir>/network_key.pem
    # A PEM bundle of the CAs that other servers' TLS certificates are checked
    # against (the mall client and the storefront); empty: the system's CAs.
    ca_file: str = ""
    # Serve HTTPS with this PEM certificate chain and its key (`serve --tls-cert
    # --tls-key`); both empty: plain HTTP, e.g. behind a TLS-terminating proxy.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    public_url: str = "http://127.0.0.1:8700"
    session_ttl_seconds: int = 12 * 3600
    max_failed_attempts: int = 5         # failed logins (or PINs) in a row before a lock
    lockout_seconds: int = 15 * 60
    max_card_declines: int = 3           # FIG 3 step 115
    card_lockout_seconds: int = 30 * 60
    # argon2id cost; defaults are OWASP's "19 MiB, t=2" minimum, raise for production
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    argon2_parallelism: int = 1
    # PINs are 4-12 digits: no KDF cost protects that little entropy offline,
    # so they are peppered with a server secret (a file outside the database)
    # and hashed with a lighter, still memory-hard argon2id profile; online
    # guessing is stopped by the PIN lockout. 1 MiB (~0.4 ms): with the
    # pepper, more cost buys nothing, and every transfer pays it.
    pin_pepper_path: str = ""            # empty: <data_dir>/pin_pepper.key
    pin_argon2_time_cost: int = 1
    pin_argon2_memory_kib: int = 1024
    log_level: str = "INFO"
    # Rate limits on guessing (services/rate_limits.py, docs/admin-guide.md): "COUNT/SECONDS"
    # = at most COUNT in any SECONDS (a burst of COUNT, then one per SECONDS/COUNT); "off" = none.
    # Failures are counted, except registrations: every attempt counts.
    rate_limits_enabled: bool = True
    rate_limit_sign_in_per_address: str = "100/86400"   # refused sign-ins (401, 423)
    rate_limit_sign_in_per_account: str = "20/3600"
    rate_limit_registrations_per_address: str = "50/86400"
    rate_limit_pin_per_address: str = "50/86400"        # wrong PINs
    rate_limit_pin_per_account: str = "20/86400"
    rate_limit_card_declines_per_address: str = "20/86400"
    rate_limit_card_declines_per_account: str = "10/86400"
    # Comma-separated addresses or networks (CIDR) of reverse proxies whose
    # X-Forwarded-For names the client; empty: the socket peer is the client.
    trusted_proxies: str = ""
    # How long an idle keep-alive connection stays open. Longer than the idle
    # time of clients and proxies (nginx 60 s upstream, AWS ALB 60 s), so the
    # server is never the side that closes a connection a client is reusing.
    keep_alive_seconds: int = 75
    # Worker threads of the money path's routes (api/worker.py): few, so that requests do not
    # spend their CPU taking the GIL from one another (docs/performance.md, issue 13).
    hot_path_threads: int = 8
    # The mall (docs/mall.md): an issue message reaching a member after this
    # many seconds is refused, so an exchange never hangs on a member that is down.
    mall_issue_deadline_seconds: int = 600
    # FIG 14: a member backs its records up to the MSP this often, when they changed (0: never;
    # `admin backup-to-mall` on demand). docs/mall.md, "FIG 14: backups and restore".
    mall_backup_seconds: int = 300
    # How long a vendor keeps the MSP's open catalog (prices of open tokens) before reading it again.
    open_catalog_max_age_seconds: int = 60
    # The MSP closes its settlement period this often (FIG 15 steps 9-10; the demo: minutes).
    msp_settlement_seconds: int = 86400
    # An open-token payment held at the MSP (authorized) and neither confirmed nor voided
    # this long is voided by the MSP (docs/mall.md "Holds, results and refunds").
    msp_open_payment_hold_seconds: int = 3600

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        values = {}
        for f in fields(cls):
            raw = os.environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    @property
    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    @property
    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.resolved_data_dir / 'tokenrent.sqlite3'}"

    @property
    def resolved_pin_pepper_path(self) -> Path:
        if self.pin_pepper_path:
            return Path(self.pin_pepper_path)
        return self.resolved_data_dir / "pin_pepper.key"

    @property
    def resolved_signing_key_path(self) -> Path:
        if self.signing_key_path:
            return Path(self.signing_key_path)
        return self.resolved_data_dir / "vendor_signing_key.pem"

    @property
    def resolved_network_key_path(self) -> Path:
        if self.network_key_path:
            return Path(self.network_key_path)
        return self.resolved_data_dir / "network_key.pem"


def _parse(name: str, type_, raw: str):
    if type_ in ("int", int):
        return int(raw)
    if type_ in ("bool", bool):
        flag = raw.strip().lower()
        if flag not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be true or false, not {raw!r}")
        return flag in ("1", "true", "yes", "on")
    return raw


_settings: Settings | None = None


def get_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def set_settings(settings: Settings) -> None:
    global _settings
    _settings = settings
