"""Build the signed packages of the example programs for the demo catalog.

The demo store sells the programs in installers/programs/. Their packages must be signed with
the demo server's own vendor key (made when the server first starts), so they are built when the
demo catalog is loaded, not shipped pre-built:

    python -m installers demo-packages OUT_DIR --key VENDOR_KEY --product "Software D=4" ... [--json]

or, from Python, build_demo_packages(out_dir, key, {"Software D": "4", ...}). Every program
is bound to the demo product it is sold as (DEMO_PROGRAMS) and gets a product.json with the
product's id, which the program reads to know which licence to ask the agent for.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_agent import package_format as pf

PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"
DEMO_VERSION = "1.0.0"


@dataclass(frozen=True)
class DemoProgram:
    folder: str          # under installers/programs/
    entry: str           # the package's entry command
    name: str            # display name
    products: tuple[str, ...]  # the demo products it is sold as


DEMO_PROGRAMS: tuple[DemoProgram, ...] = (
    # processings: the SDK's reserve/commit per image (also works for a time rental)
    DemoProgram("raster_tool", "{python} rastertool.py", "Raster Tool", ("Software D", "ScanClean Pro")),
    # time: the SDK's check at start and every 30 s
    DemoProgram("note_viewer", "{python} noteviewer.py", "Note Viewer", ("Software B",)),
    # uses (or time): launched through `license-agent run`
    DemoProgram("dice_game", "{python} dicegame.py --gui", "Pig Dice Game", ("Software C", "Pixel Quest")),
    # processings from a shell script through the CLI (permanent: always allowed)
    DemoProgram("shell_wordcount", "wordcount.sh", "Word Count", ("DocVault", "Software A")),
)


@dataclass(frozen=True)
class DemoPackage:
    program: str
    product_name: str
    product_id: str
    version: str
    path: Path


def _signing_key(key: Ed25519PrivateKey | str | Path) -> Ed25519PrivateKey:
    return key if isinstance(key, Ed25519PrivateKey) else pf.load_signing_key(key)


def build_program_package(program: DemoProgram, product_id: str, out_file: Path,
                          key: Ed25519PrivateKey | str | Path, version: str = DEMO_VERSION) -> Path:
    """One program's package, bound to product_id through its product.json."""
    with tempfile.TemporaryDirectory(prefix="tokenrent-demo-") as tmp:
        stage = Path(tmp) / program.folder
        shutil.copytree(PROGRAMS_DIR / program.folder, stage,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "product.json"))
        (stage / "product.json").write_text(json.dumps({"product_id": str(product_id)}) + "\n")
        pf.build_package(stage, out_file, product_id=str(product_id), version=version,
                         entry=program.entry, signing_key=_signing_key(key), name=program.name)
    return out_file


def build_demo_packages(out_dir: str | Path, key: Ed25519PrivateKey | str | Path,
                        product_ids_by_name: Mapping[str, str | int],
                        version: str = DEMO_VERSION) -> list[DemoPackage]:
    """Build a package for every (demo program, product it is sold as) whose product exists."""
    out_dir = Path(out_dir)
    signing_key = _signing_key(key)
    built = []
    for program in DEMO_PROGRAMS:
        for product_name in program.products:
            if product_name not in product_ids_by_name:
                continue
            product_id = str(product_ids_by_name[product_name])
            path = out_dir / f"{program.folder}-{product_id}-{version}{pf.PACKAGE_SUFFIX}"
            build_program_package(program, product_id, path, signing_key, version)
            built.append(DemoPackage(program.folder, product_name, product_id, version, path))
    return built


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m installers demo-packages")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--key", required=True, help="the server's vendor signing key file")
    ap.add_argument("--product", action="append", default=[], metavar="NAME=ID",
                    help='a demo product and its server id, e.g. "Software D=4" (repeat)')
    ap.add_argument("--version", default=DEMO_VERSION)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    ids = {}
    for item in args.product:
        name, sep, pid = item.rpartition("=")
        if not sep or not name or not pid:
            ap.error(f"--product wants NAME=ID, got {item!r}")
        ids[name] = pid
    try:
        built = build_demo_packages(args.out_dir, args.key, ids, args.version)
    except pf.PackageError as e:
        print(f"demo-packages: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{"program": b.program, "product_name": b.product_name, "product_id": b.product_id,
                           "version": b.version, "path": str(b.path)} for b in built]))
    else:
        for b in built:
            print(f"{b.path}: {b.program} for {b.product_name} (product {b.product_id})")
    return 0
