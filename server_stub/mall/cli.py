"""`tokenrent-server msp serve` (migrate the MSP's database, make sure its
network key exists, run uvicorn), `tokenrent-server msp admin ...` (the
operator's commands, admin_cli.py) and `tokenrent-server msp audit` (the
network's audit, audit.py).

Settings are the vendor server's (core/config.Settings, TOKENRENT_*), with two
MSP defaults: the database is `<data_dir>/mall.db` and the network key
`<data_dir>/msp_network_key.pem`, so an MSP beside a vendor shares neither."""
from __future__ import annotations

import argparse
import os
from dataclasses import replace

from ..core.config import Settings, set_settings

DEFAULT_PORT = 8800
DB_FILE_NAME = "mall.db"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]  # argparse's own generic
    from . import admin_cli, settlement_cli  # noqa: F401  (their commands join the table)
    from .commands import MSP_COMMANDS

    msp = sub.add_parser("msp", help="the Mall Service Provider: its server and operator commands")
    actions = msp.add_subparsers(dest="msp_command", required=True)
    sp = actions.add_parser("serve", help="run the MSP's HTTP server (migrates its database first)")
    sp.add_argument("--db", help=f"database URL; default: SQLite {DB_FILE_NAME} in the data dir")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=DEFAULT_PORT)
    sp.add_argument("--workers", type=int, default=1)
    sp.add_argument("--demo", action="store_true", help="demo data (none yet: the demo mall comes later)")
    sp.add_argument("--data-dir")
    sp.add_argument("--network-key", help="path of the MSP's network key file")
    sp.add_argument("--public-url")
    sp.add_argument("--log-level", default=None)
    sp.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM, with its chain)")
    sp.add_argument("--tls-key", help="the certificate's private key (PEM)")
    ap = actions.add_parser("admin", help="MSP operator commands")
    ap.add_argument("--db", help=f"database URL (default: SQLite {DB_FILE_NAME} in the data dir)")
    ap.add_argument("--data-dir")
    ap.add_argument("--network-key", help="path of the MSP's network key file")
    MSP_COMMANDS.add_parsers(ap, "msp_admin_command")
    au = actions.add_parser("audit", help="check the whole network after quiescence (DESIGN.md, Audit): "
                                          "exit 0 when it holds, 1 with the problems printed when not")
    au.add_argument("--db", help=f"database URL (default: SQLite {DB_FILE_NAME} in the data dir)")
    au.add_argument("--data-dir")
    au.add_argument("--network-key", help="path of the MSP's network key file")


def settings_from(a: argparse.Namespace) -> Settings:
    s = Settings.from_env(db_url=a.db, data_dir=a.data_dir, network_key_path=a.network_key,
                          public_url=getattr(a, "public_url", None), tls_cert_file=getattr(a, "tls_cert", None),
                          tls_key_file=getattr(a, "tls_key", None))
    if not s.db_url:
        s = replace(s, db_url=f"sqlite:///{s.resolved_data_dir / DB_FILE_NAME}")
    if not s.network_key_path:
        from .identity import KEY_FILE_NAME

        s = replace(s, network_key_path=str(s.resolved_data_dir / KEY_FILE_NAME))
    if a.msp_command == "serve" and s.public_url == Settings.public_url:
        s = replace(s, public_url=f"{'https' if s.tls_cert_file else 'http'}://{a.host}:{a.port}")
    os.environ.update(s.to_env())   # uvicorn workers (other processes) read the same settings
    set_settings(s)
    if s.resolved_db_url.startswith("sqlite"):
        s.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    return s


def run(a: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if getattr(a, "log_level", None):
        os.environ["TOKENRENT_LOG_LEVEL"] = a.log_level
    s = settings_from(a)
    if a.msp_command == "serve" and (s.tls_cert_file or s.tls_key_file):
        from ..core.tls import check_server_files

        try:
            check_server_files(s.tls_cert_file, s.tls_key_file)   # before anything starts, named
        except ValueError as e:
            parser.error(str(e))
    from ..db import dispose_engines, write_session
    from ..logs import log, setup_logging
    from ..start_up import run_apart
    from .identity import msp_key, msp_public_text

    setup_logging(s.log_level)

    def prepare() -> None:
        from . import migrate   # here: the serving process never imports Alembic (start_up.py)

        migrate.upgrade(s.resolved_db_url)
        msp_key()   # the key exists (0600, created atomically) before any worker starts

    def prepare_apart() -> None:
        prepare()
        dispose_engines()   # the child closes its connections before it exits

    if a.msp_command == "serve":
        run_apart(prepare_apart)
    else:
        prepare()
    if a.msp_command == "audit":
        return _audit()
    if a.msp_command == "admin":
        from . import admin_cli, settlement_cli  # noqa: F401  (their commands join the table)
        from .commands import MSP_COMMANDS

        return MSP_COMMANDS.run(a.msp_admin_command, a, write_session)

    if a.demo:
        log("demo mall: no demo members yet (tokenrent-server msp admin invite NAME admits a vendor)")
    dispose_engines()   # don't hand pooled connections to forked workers
    log("msp serving", host=a.host, port=a.port, workers=a.workers, db=s.resolved_db_url.split("@")[-1],
        tls=bool(s.tls_cert_file), public_url=s.public_url, msp_key=msp_public_text())
    import uvicorn

    uvicorn.run("server_stub.mall.app:create_app", factory=True, host=a.host, port=a.port,
                workers=a.workers, log_level="warning", access_log=False, proxy_headers=False,
                timeout_keep_alive=s.keep_alive_seconds, ssl_certfile=s.tls_cert_file or None,
                ssl_keyfile=s.tls_key_file or None)
    return 0


def _audit() -> int:
    """`msp audit`: the report as JSON on stdout (with every problem), each problem
    also a line on stderr; exit 1 when anything is wrong. (`msp admin audit`, the older
    name, exits 2 like every refused admin command.)"""
    import json
    import sys

    from .audit import run_audit

    report = run_audit()
    print(json.dumps({"ok": report.ok, "members": report.members, "completed": report.completed,
                      "failed": report.failed, "problems": report.problems}, indent=2))
    for problem in report.problems:
        print(f"audit: {problem}", file=sys.stderr)
    return 0 if report.ok else 1
