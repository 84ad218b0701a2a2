"""The catalog (FIG 6, 7, 17): categories, products, offers with tiers,
published versions. Every price is shown in tokens and in cash at the
vendor's token price (one rule: `pricing.cash_cents`)."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from license_agent.codes import store_link

from ..core.config import get_settings
from ..models.store import Category, Offer, OfferTier, Product, ProductVersion
from ..vocabulary import TIERED_OFFER_KINDS, UNIT_OF_OFFER, OfferKind
from .errors import Conflict, Invalid, NotFound
from .pricing import cash_cents, token_price_cents

MAX_PRICE_TOKENS = 1_000_000
MAX_QUANTITY = {OfferKind.RENT_TIME: 36_500, OfferKind.RENT_USES: 1_000_000_000,
                OfferKind.RENT_PROCESSINGS: 1_000_000_000}
MAX_TIERS = 20
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")  # as package_format's


def store_url(product_id: int) -> str:
    return store_link(product_id)


# ---------------------------------------------------------------- views

def category_view(c: Category, product_count: int | None = None) -> dict:
    out = {"id": c.id, "name": c.name, "description": c.description, "position": c.position}
    if product_count is not None:
        out["product_count"] = product_count
    return out


def offer_view(o: Offer, tiers: list[OfferTier], price_cents: int) -> dict:
    out = {"id": o.id, "product_id": o.product_id, "kind": o.kind, "active": o.active,
           "low_threshold": o.low_threshold}
    if o.kind in TIERED_OFFER_KINDS:
        out["tiers"] = [{"quantity": t.quantity, "tokens": t.tokens,
                         "cash_cents": cash_cents(t.tokens, price_cents)}
                        for t in sorted(tiers, key=lambda t: t.quantity)]
        out["unit"] = UNIT_OF_OFFER[o.kind]
    else:
        out["tokens"] = o.tokens
        out["cash_cents"] = cash_cents(o.tokens or 0, price_cents)
    return out


def version_view(v: ProductVersion) -> dict:
    return {"id": v.id, "version": v.version, "file_name": v.file_name, "sha256": v.sha256,
            "size": v.size, "signed_package": v.package_kid is not None, "published_at": v.published_at}


def download_url(product_id: int) -> str:
    return f"{get_settings().public_url.rstrip('/')}/v1/products/{product_id}/download"


def product_views(db: Session, products: list[Product], include_inactive_offers: bool = False) -> list[dict]:
    """Products with offers, tiers and latest version, in a fixed number of queries."""
    if not products:
        return []
    price = token_price_cents(db)
    ids = [p.id for p in products]
    offers = db.scalars(select(Offer).where(Offer.product_id.in_(ids)).order_by(Offer.id)).all()
    tiers: dict[int, list[OfferTier]] = {}
    if offers:
        for t in db.scalars(select(OfferTier).where(OfferTier.offer_id.in_([o.id for o in offers]))):
            tiers.setdefault(t.offer_id, []).append(t)
    latest: dict[int, ProductVersion] = {}
    for v in db.scalars(select(ProductVersion).where(ProductVersion.product_id.in_(ids))
                        .order_by(ProductVersion.id)):
        latest[v.product_id] = v
    order = {k: i for i, k in enumerate(OfferKind)}
    out = []
    for p in products:
        own = sorted((o for o in offers if o.product_id == p.id and (o.active or include_inactive_offers)),
                     key=lambda o: order.get(o.kind, 99))
        v = latest.get(p.id)
        out.append({
            "id": p.id, "name": p.name, "category_id": p.category_id, "description": p.description,
            "publisher": p.publisher, "on_sale": p.on_sale, "active": p.active,
            "store_url": store_url(p.id),
            "offers": [offer_view(o, tiers.get(o.id, []), price) for o in own],
            "latest_version": version_view(v) if v else None,
            "token_price_cents": price,
        })
    return out


def list_categories(db: Session) -> list[dict]:
    counts = dict(db.execute(select(Product.category_id, func.count()).where(Product.active.is_(True))
                             .group_by(Product.category_id)).all())
    rows = db.scalars(select(Category).order_by(Category.position, Category.id)).all()
    return [category_view(c, counts.get(c.id, 0)) for c in rows]


def list_products(db: Session, category_id: int | None = None, include_inactive: bool = False) -> list[dict]:
    q = select(Product).order_by(Product.category_id, Product.name)
    if category_id is not None:
        if db.get(Category, category_id) is None:
            raise NotFound("no such category")
        q = q.where(Product.category_id == category_id)
    if not include_inactive:
        q = q.where(Product.active.is_(True))
    return product_views(db, list(db.scalars(q).all()), include_inactive_offers=include_inactive)


def get_product(db: Session, product_id: int, include_inactive: bool = False) -> Product:
    p = db.get(Product, product_id)
    if p is None or (not p.active and not include_inactive):
        raise NotFound("no such product")
    return p


# ---------------------------------------------------------------- admin edits

def _clean_name(name: str, what: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid(f"{what} name must be 1-100 characters")
    return name


def create_category(db: Session, name: str, description: str = "", position: int | None = None) -> Category:
    name = _clean_name(name, "category")
    if db.scalar(select(Category).where(Category.name == name)) is not None:
        raise Conflict(f"a category named {name!r} already exists")
    if position is None:
        position = int(db.scalar(select(func.coalesce(func.max(Category.position), 0)))) + 1
    c = Category(name=name, description=description or "", position=position)
    db.add(c)
    db.flush()
    return c


def update_category(db: Session, category_id: int, name: str | None = None, description: str | None = None,
                    position: int | None = None) -> Category:
    c = db.get(Category, category_id)
    if c is None:
        raise NotFound("no such category")
    if name is not None:
        name = _clean_name(name, "category")
        other = db.scalar(select(Category).where(Category.name == name, Category.id != c.id))
        if other is not None:
            raise Conflict(f"a category named {name!r} already exists")
        c.name = name
    if description is not None:
        c.description = description
    if position is not None:
        c.position = position
    db.flush()
    return c


def create_product(db: Session, category_id: int, name: str, description: str = "", publisher: str = "",
                   on_sale: bool = False, active: bool = True) -> Product:
    if db.get(Category, category_id) is None:
        raise NotFound("no such category")
    name = _clean_name(name, "product")
    if db.scalar(select(Product).where(Product.name == name)) is not None:
        raise Conflict(f"a product named {name!r} already exists")
    p = Product(category_id=category_id, name=name, description=description or "", publisher=publisher or "",
                on_sale=on_sale, active=active)
    db.add(p)
    db.flush()
    return p


def update_product(db: Session, product_id: int, **changes) -> Product:
    p = get_product(db, product_id, include_inactive=True)
    if changes.get("category_id") is not None and db.get(Category, changes["category_id"]) is None:
        raise NotFound("no such category")
    if changes.get("name") is not None:
        changes["name"] = _clean_name(changes["name"], "product")
        other = db.scalar(select(Product).where(Product.name == changes["name"], Product.id != p.id))
        if other is not None:
            raise Conflict(f"a product named {changes['name']!r} already exists")
    for field in ("category_id", "name", "description", "publisher", "on_sale", "active"):
        if changes.get(field) is not None:
            setattr(p, field, changes[field])
    db.flush()
    return p


def put_offer(db: Session, product_id: int, kind: str, tokens: int | None = None,
              tiers: list[tuple[int, int]] | None = None, low_threshold: int | None = None,
              active: bool = True) -> Offer:
    """Create or replace the product's offer of this kind (tiers replaced as a whole)."""
    get_product(db, product_id, include_inactive=True)
    if kind not in frozenset(OfferKind):   # a str: `in` the enum class itself raises on 3.11
        raise Invalid(f"offer kind must be one of {', '.join(OfferKind)}")
    tiers = list(tiers or [])
    if kind in (OfferKind.PURCHASE, OfferKind.CONVERT):
        if tokens is None or tiers:
            raise Invalid(f"a {kind} offer has a price in tokens and no tiers")
        if not 1 <= tokens <= MAX_PRICE_TOKENS:
            raise Invalid(f"tokens must be between 1 and {MAX_PRICE_TOKENS}")
    else:
        if tokens is not None or not tiers:
            raise Invalid(f"a {kind} offer has tiers (quantity, tokens) and no single price")
        if len(tiers) > MAX_TIERS:
            raise Invalid(f"at most {MAX_TIERS} tiers")
        seen = set()
        for q, t in tiers:
            if not 1 <= q <= MAX_QUANTITY[kind]:
                raise Invalid(f"tier quantity must be between 1 and {MAX_QUANTITY[kind]}")
            if not 1 <= t <= MAX_PRICE_TOKENS:
                raise Invalid(f"tier tokens must be between 1 and {MAX_PRICE_TOKENS}")
            if q in seen:
                raise Invalid(f"tier quantity {q} appears twice")
            seen.add(q)
    if low_threshold is not None and not 0 <= low_threshold <= 1_000_000_000:
        raise Invalid("low_threshold must be between 0 and 1000000000")
    offer = db.scalar(select(Offer).where(Offer.product_id == product_id, Offer.kind == kind))
    if offer is None:
        offer = Offer(product_id=product_id, kind=kind)
        db.add(offer)
    offer.tokens, offer.low_threshold, offer.active = tokens, low_threshold, active
    db.flush()
    for old in db.scalars(select(OfferTier).where(OfferTier.offer_id == offer.id)).all():
        db.delete(old)
    db.flush()
    for q, t in tiers:
        db.add(OfferTier(offer_id=offer.id, quantity=q, tokens=t))
    db.flush()
    return offer


def offer_detail(db: Session, offer: Offer) -> dict:
    tiers = db.scalars(select(OfferTier).where(OfferTier.offer_id == offer.id)).all()
    return offer_view(offer, list(tiers), token_price_cents(db))


# ---------------------------------------------------------------- files

def packages_dir() -> Path:
    return get_settings().resolved_data_dir / "packages"


def _hash_copy(src: Path, dest_dir: Path) -> tuple[Path, str, int]:
    """Stream src into a temp file in dest_dir, hashing as it goes."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    h, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".incoming-")
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return Path(tmp), h.hexdigest(), size


def safe_file_name(name: str) -> str:
    """The name a download is offered under: a plain file name, nothing else."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    return name[:200] or "package.bin"


def publish(db: Session, file_path: str, product_id: int | None = None, version: str | None = None,
            file_name: str | None = None) -> ProductVersion:
    """Store a product version's file. A TokenRent program package names its
    product and version in its signed manifest, and must be signed by one of
    the vendor's keys; any other file needs --product and --version."""
    from license_agent import package_format as pf

    from .signing_keys import trusted_public_keys

    src = Path(file_path)
    if not src.is_file():
        raise Invalid(f"{src} is not a file")
    kid = None
    is_package = False
    try:
        pf.read_manifest(str(src))
        is_package = True
    except Exception:  # noqa: BLE001  any file that is not a readable package is "a file"
        # ... unless it starts like one: a truncated or damaged package is refused below.
        is_package = pf.looks_like_package(str(src))
    if is_package:
        trusted = trusted_public_keys(db)
        try:
            verified = pf.verify_package(str(src), trusted)
        except Exception as e:  # noqa: BLE001  a damaged archive is refused, never a crash
            raise Invalid(f"the package is refused: {e}") from None
        m = verified.manifest
        try:
            manifest_product = int(m.product_id)
        except ValueError:
            raise Invalid(f"the package is for product {m.product_id!r}, which is not a server product id") from None
        if product_id is not None and product_id != manifest_product:
            raise Invalid(f"the package is for product {manifest_product}, not {product_id}")
        if version is not None and version != m.version:
            raise Invalid(f"the package is version {m.version}, not {version}")
        product_id, version, kid = manifest_product, m.version, verified.kid
    if product_id is None or not version:
        raise Invalid("a file that is not a TokenRent package needs a product id and a version")
    if not VERSION_RE.match(version):
        raise Invalid("version must be 1-64 letters, digits, '.', '+', '_' or '-'")
    get_product(db, product_id, include_inactive=True)
    if db.scalar(select(ProductVersion).where(ProductVersion.product_id == product_id,
                                              ProductVersion.version == version)) is not None:
        raise Conflict(f"product {product_id} already has version {version}: publish a new version")
    tmp, sha, size = _hash_copy(src, packages_dir())
    storage_name = f"{sha}.bin"
    os.replace(tmp, packages_dir() / storage_name)   # content-addressed: same bytes, same file
    v = ProductVersion(product_id=product_id, version=version, file_name=safe_file_name(file_name or src.name),
                       storage_name=storage_name, sha256=sha, size=size, package_kid=kid)
    db.add(v)
    db.flush()
    return v


def latest_version(db: Session, product_id: int) -> ProductVersion | None:
    return db.scalar(select(ProductVersion).where(ProductVersion.product_id == product_id)
                     .order_by(ProductVersion.id.desc()).limit(1))
