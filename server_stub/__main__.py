"""tokenrent-server: `serve` (migrate, optional demo data, run uvicorn) and
`admin ...` (the vendor operator's commands, see admin_cli.py)."""
from __future__ import annotations

import argparse
import os
import sys

from .core.config import Settings, set_settings


def _settings_from(a: argparse.Namespace) -> Settings:
    s = Settings.from_env(db_url=a.db, data_dir=getattr(a, "data_dir", None),
                          signing_key_path=getattr(a, "signing_key", None),
                          public_url=getattr(a, "public_url", None),
                          tls_cert_file=getattr(a, "tls_cert", None), tls_key_file=getattr(a, "tls_key", None))
    os.environ.update(s.to_env())  # uvicorn workers (other processes) read the same settings
    set_settings(s)
    if not s.db_url or s.resolved_db_url.startswith("sqlite"):
        s.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    return s


def _prepare(s: Settings, serving: bool, demo: bool = False) -> None:
    """Migrations and the PIN pepper; for `serve` also the vendor signing key and the demo data."""
    from . import migrate
    from .core.security import pin_pepper
    from .db import dispose_engines, write_session
    from .logs import log
    from .services import signing_keys

    migrate.upgrade(s.resolved_db_url)
    pin_pepper()  # create the PIN pepper once, before any worker starts
    if not serving:
        return
    with write_session() as db:  # the vendor signing key exists from the first start on
        signing_keys.ensure_key(db)
    if demo:
        from . import demo as demo_data

        with write_session() as db:
            notes = demo_data.load(db)
        log("demo data ready", changes=notes, accounts=demo_data.credentials_text())
    dispose_engines()   # a child of run_apart closes its connections before it exits


def main(argv: list[str] | None = None) -> int:
    from . import admin_cli

    parser = argparse.ArgumentParser(prog="tokenrent-server", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("serve", help="run the HTTP server (migrates the database first)")
    sp.add_argument("--db", help="database URL; default: SQLite file in the user data dir")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8700)
    sp.add_argument("--workers", type=int, default=1)
    sp.add_argument("--demo", action="store_true", help="load the demo data (idempotent)")
    sp.add_argument("--data-dir")
    sp.add_argument("--signing-key", help="path of the vendor signing key file")
    sp.add_argument("--public-url")
    sp.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain); needs --tls-key")
    sp.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    sp.add_argument("--log-level", default=None)
    admin_cli.add_parser(sub)
    from .mall import cli as mall_cli

    mall_cli.add_parser(sub)
    from . import demo_mall

    demo_mall.add_parser(sub)
    a = parser.parse_args(argv)
    if a.command == "msp":
        return mall_cli.run(a, parser)
    if a.command == "demo-mall":
        return demo_mall.run(a)

    if getattr(a, "log_level", None):
        os.environ["TOKENRENT_LOG_LEVEL"] = a.log_level
    s = _settings_from(a)
    from .services import rate_limits

    try:
        rate_limits.policy(s)  # a mistyped limit or proxy list stops the server here, named
    except ValueError as e:
        parser.error(str(e))
    if a.command == "serve" and (s.tls_cert_file or s.tls_key_file):
        from .core.tls import check_server_files

        try:
            check_server_files(s.tls_cert_file, s.tls_key_file)   # before anything starts, named
        except ValueError as e:
            parser.error(str(e))
    from .logs import log, setup_logging

    setup_logging(s.log_level)
    if a.command == "admin":
        _prepare(s, serving=False)
        return admin_cli.run(a)
    from .start_up import run_apart

    run_apart(lambda: _prepare(s, serving=True, demo=a.demo))   # the serving process never imports Alembic
    if s.public_url == Settings.public_url:
        scheme = "https" if s.tls_cert_file else "http"
        os.environ["TOKENRENT_PUBLIC_URL"] = f"{scheme}://{a.host}:{a.port}"
        set_settings(Settings.from_env())  # this process serves too (workers=1): links must use the real port
    from .db import dispose_engines

    dispose_engines()  # don't hand pooled connections to forked workers
    log("serving", host=a.host, port=a.port, workers=a.workers, tls=bool(s.tls_cert_file),
        db=s.resolved_db_url.split("@")[-1])
    import uvicorn

    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from
    # 127.0.0.1; which proxies are trusted is TOKENRENT_TRUSTED_PROXIES' business.
    uvicorn.run("server_stub.app:create_app", factory=True, host=a.host, port=a.port,
                workers=a.workers, log_level="warning", access_log=False, proxy_headers=False,
                timeout_keep_alive=s.keep_alive_seconds,
                ssl_certfile=s.tls_cert_file or None, ssl_keyfile=s.tls_key_file or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
