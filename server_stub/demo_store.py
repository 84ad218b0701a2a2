"""The demo store (`serve --demo`, idempotent): exactly FIG 6's six
categories; FIG 7's Software A-D under Document Raster Editing with the
patent's prices (FIG 8: A 100 tokens; D 100/1,000/10,000 processings for
10/80/600); one product in each other category so that every offer kind and
every conversion (e, f, g) appears. The example programs' packages are built
with the server's own key (`python -m installers demo-packages`, run as a
separate process) and published, when the installers part is present."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models.store import Category, Product, ProductVersion
from .services import catalog, signing_keys
from .vocabulary import OfferKind

CATEGORIES = [  # FIG 6, in its order
    "Scanned Document Enhancement",
    "Document Raster Editing",
    "Computer Aided Design (CAD)",
    "Engineering Document Management Systems (EDMS)",
    "Language Translators",
    "Computer Games",
]

DAY = 86_400
# the demo products installers/demo_packages.py has an example program for
PROGRAM_PRODUCTS = ("Software A", "Software B", "Software C", "Software D", "ScanClean Pro", "Pixel Quest",
                    "DocVault")
# (category, name, publisher, description, on_sale, offers{kind: tokens | [(quantity, tokens)]}, low_threshold)
PRODUCTS = [
    ("Document Raster Editing", "Software A", "TokenRent Demo Labs",
     "Raster editor for scanned drawings. Permanent license.", False,
     {OfferKind.PURCHASE: 100}, None),
    ("Document Raster Editing", "Software B", "TokenRent Demo Labs",
     "Raster viewer and markup. Buy it, or rent it by time.", False,
     {OfferKind.PURCHASE: 250, OfferKind.RENT_TIME: [(7, 15), (30, 50), (365, 400)]}, 2 * DAY),
    ("Document Raster Editing", "Software C", "TokenRent Demo Labs",
     "Raster clean-up wizard. Buy it, or rent it by number of uses.", False,
     {OfferKind.PURCHASE: 200, OfferKind.RENT_USES: [(10, 5), (50, 20), (200, 60)]}, 3),
    ("Document Raster Editing", "Software D", "TokenRent Demo Labs",
     "Batch raster converter, rented by number of processings only.", False,
     {OfferKind.RENT_PROCESSINGS: [(100, 10), (1_000, 80), (10_000, 600)]}, 50),
    ("Scanned Document Enhancement", "ScanClean Pro", "Clarity Imaging",
     "Despeckle and deskew scans. Rent by time, then keep it (convert).", False,
     {OfferKind.RENT_TIME: [(30, 40), (90, 100)], OfferKind.CONVERT: 150}, 3 * DAY),
    ("Computer Aided Design (CAD)", "DraftCAD Lite", "Vector Works Demo",
     "2-D drafting. Buy, or rent by uses and convert later.", False,
     {OfferKind.PURCHASE: 400, OfferKind.RENT_USES: [(20, 30), (100, 120)], OfferKind.CONVERT: 300}, 5),
    ("Engineering Document Management Systems (EDMS)", "DocVault", "Archive Systems Demo",
     "Check-in and index engineering documents; pay per processed document, or convert.", False,
     {OfferKind.RENT_PROCESSINGS: [(500, 25), (5_000, 200)], OfferKind.CONVERT: 500}, 100),
    ("Language Translators", "LinguaPort", "Babel Demo",
     "Document translator. On sale: restricted tokens may pay for it.", True,
     {OfferKind.PURCHASE: 120, OfferKind.RENT_USES: [(25, 15)]}, 5),
    ("Computer Games", "Pixel Quest", "Arcade Demo",
     "A small game: rent it for a day or a week, buy it, or convert a rental.", False,
     {OfferKind.PURCHASE: 60, OfferKind.RENT_TIME: [(1, 2), (7, 10)], OfferKind.CONVERT: 50}, DAY // 4),
]


# The demo mall (server_stub/demo_mall.py): Mall A1 (the home member) carries PRODUCTS above;
# every other member its own products, none of them in two stores.
MALL_PRODUCTS: dict[str, list[tuple]] = {
    "a": [  # the franchisor's own store
        ("Computer Aided Design (CAD)", "FrameCAD Pro", "Franchise Tools Demo",
         "3-D frame design for the whole franchise. Buy it, or rent it by time.", False,
         {OfferKind.PURCHASE: 900, OfferKind.RENT_TIME: [(30, 90), (365, 700)]}, 3 * DAY),
        ("Scanned Document Enhancement", "OCR Batch", "Franchise Tools Demo",
         "Text recognition for scanned pages, rented by number of processings.", False,
         {OfferKind.RENT_PROCESSINGS: [(200, 15), (2_000, 120)]}, 40),
    ],
    "a2": [
        ("Computer Aided Design (CAD)", "PlotStation", "Vector Works Demo",
         "Plot and print large drawings. Buy it, or rent it by uses.", False,
         {OfferKind.PURCHASE: 300, OfferKind.RENT_USES: [(10, 20), (100, 150)]}, 3),
        ("Engineering Document Management Systems (EDMS)", "RevTrack", "Archive Systems Demo",
         "Revision control for engineering drawings. Rent by time, then keep it.", False,
         {OfferKind.RENT_TIME: [(30, 60), (180, 300)], OfferKind.CONVERT: 400}, 5 * DAY),
    ],
    "b": [
        ("Language Translators", "PhraseBook Live", "Babel West Demo",
         "Speech and text translation, rented by number of uses.", False,
         {OfferKind.RENT_USES: [(20, 40), (100, 160)]}, 5),
        ("Computer Games", "Star Harbor", "Arcade West Demo",
         "A space trading game: rent it for a week, or buy it.", True,
         {OfferKind.PURCHASE: 180, OfferKind.RENT_TIME: [(7, 30)]}, DAY),
        ("Computer Games", "Word Forge", "Arcade West Demo",
         "A word puzzle game. Buy it.", False,
         {OfferKind.PURCHASE: 80}, None),
    ],
}


def load_store_demo(db: Session, products: list[tuple] | None = None) -> list[str]:
    """FIG 6's categories and `products` (default: PRODUCTS, with the example programs' packages)."""
    notes = []
    cats = {}
    for position, name in enumerate(CATEGORIES, 1):
        c = db.scalar(select(Category).where(Category.name == name))
        if c is None:
            c = catalog.create_category(db, name, position=position)
            notes.append(f"category {name}")
        cats[name] = c
    for category, name, publisher, description, on_sale, offers, low in (PRODUCTS if products is None else products):
        if db.scalar(select(Product).where(Product.name == name)) is not None:
            continue
        p = catalog.create_product(db, cats[category].id, name, description, publisher, on_sale)
        for kind, price in offers.items():
            if isinstance(price, list):
                catalog.put_offer(db, p.id, kind, tiers=price, low_threshold=low)
            else:
                catalog.put_offer(db, p.id, kind, tokens=price)
        notes.append(f"product {name}")
    if products is None:
        notes += publish_demo_packages(db)
    return notes


def publish_demo_packages(db: Session) -> list[str]:
    """Build the example programs' packages with this server's key and publish
    the ones not published yet. Without the installers part: a note, no error."""
    ids = {p.name: p.id for p in db.scalars(select(Product).where(Product.name.in_(PROGRAM_PRODUCTS)))}
    published = {pid for (pid,) in db.execute(select(ProductVersion.product_id)).all()}
    wanted = {name: pid for name, pid in ids.items() if pid not in published}
    if not wanted:
        return []
    key_path = signing_keys.key_path()
    signing_keys.ensure_key(db)
    with tempfile.TemporaryDirectory(prefix="tokenrent-demo-packages-") as out:
        cmd = [sys.executable, "-m", "installers", "demo-packages", out, "--key", str(key_path), "--json"]
        for name, pid in wanted.items():
            cmd += ["--product", f"{name}={pid}"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                                 cwd=Path(__file__).resolve().parents[1])
        except (OSError, subprocess.SubprocessError) as e:
            return [f"demo packages not built: {e}"]
        if res.returncode != 0:
            return [f"demo packages not built: {res.stderr.strip()[-300:]}"]
        notes = []
        for built in json.loads(res.stdout or "[]"):
            v = catalog.publish(db, built["path"])
            notes.append(f"published {built['product_name']} {v.version}")
        return notes
