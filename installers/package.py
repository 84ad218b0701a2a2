"""`tokenrent-package`: the admin's tool to package a vendor program for download.

    tokenrent-package build SRC_DIR --product ID --version V --entry CMD -o FILE [--key PATH]
    tokenrent-package verify FILE --public-key B64 | --key PATH
    tokenrent-package show FILE

The format itself lives in license_agent.package_format (one implementation for the builder,
the server and the storefront).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from license_agent import package_format as pf

KEY_ENV = "TOKENRENT_VENDOR_KEY"


def default_key_path() -> Path | None:
    """--key, else $TOKENRENT_VENDOR_KEY, else the local server's vendor key file."""
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    try:  # the server decides where its key lives (TOKENRENT_SIGNING_KEY_PATH, else its data dir)
        from server_stub.core.config import Settings
    except ImportError:
        return None
    path = Settings.from_env().resolved_signing_key_path
    return path if path.exists() else None


def _resolve_key(arg: str | None) -> Path:
    path = Path(arg) if arg else default_key_path()
    if path is None:
        raise pf.PackageError(f"no signing key: pass --key PATH or set {KEY_ENV} "
                              "(no local server key file was found either)")
    return path


def _manifest_summary(m: pf.Manifest) -> dict:
    return {"product_id": m.product_id, "version": m.version, "name": m.name, "entry": m.entry,
            "files": len(m.files), "bytes": m.total_size, "created_at": m.created_at}


def cmd_build(args) -> int:
    key = pf.load_signing_key(_resolve_key(args.key))
    out = Path(args.output)
    manifest = pf.build_package(args.src_dir, out, product_id=args.product, version=args.version,
                                entry=args.entry, signing_key=key, name=args.name or "",
                                exclude=tuple(args.exclude))
    summary = _manifest_summary(manifest) | {"package": str(out), "package_bytes": out.stat().st_size,
                                             "kid": pf.kid_for(key.public_key().public_bytes_raw())}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"built {out} ({summary['package_bytes']} bytes): product {manifest.product_id} "
              f"version {manifest.version}, {len(manifest.files)} files, signed by key {summary['kid']}")
    return 0


def cmd_verify(args) -> int:
    if args.public_key:
        trusted = pf.trusted_keys_for(pf.public_key_from_b64(args.public_key))
    else:
        trusted = pf.trusted_keys_for(pf.load_signing_key(_resolve_key(args.key)).public_key())
    verified = pf.verify_package(args.file, trusted)
    print(f"OK: {args.file} is product {verified.manifest.product_id} version "
          f"{verified.manifest.version}, signed by {verified.kid}, every file matches")
    return 0


def cmd_show(args) -> int:
    m = pf.read_manifest(args.file)
    print(json.dumps(_manifest_summary(m) | {"signature": "NOT checked (use verify)"}, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokenrent-package",
                                description="Package a vendor program for TokenRent downloads.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="pack and sign SRC_DIR")
    b.add_argument("src_dir")
    b.add_argument("--product", required=True, help="the server's product id")
    b.add_argument("--version", required=True)
    b.add_argument("--entry", required=True,
                   help='command line relative to the install dir; "{python}" stands for Python 3')
    b.add_argument("-o", "--output", required=True)
    b.add_argument("--key", help=f"vendor Ed25519 private key file (default: ${KEY_ENV})")
    b.add_argument("--name", help="display name of the program")
    b.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out matching files or folders (repeat); __pycache__, *.pyc, .git ... always")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_build)
    v = sub.add_parser("verify", help="check the signature and every file")
    v.add_argument("file")
    g = v.add_mutually_exclusive_group()
    g.add_argument("--public-key", help="vendor public key, base64 raw Ed25519 (GET /v1/vendor-key)")
    g.add_argument("--key", help="vendor private key file (its public half is used)")
    v.set_defaults(func=cmd_verify)
    s = sub.add_parser("show", help="print the manifest without verifying")
    s.add_argument("file")
    s.set_defaults(func=cmd_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except pf.PackageError as e:
        print(f"tokenrent-package: {e}", file=sys.stderr)
        return 4 if args.command == "verify" else 2  # 4 = invalid or tampered, as the agent's CLI


if __name__ == "__main__":
    sys.exit(main())
