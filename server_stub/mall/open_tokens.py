"""The MSP's issuing side of open tokens (FIG 18-19, claims 6-9, 22-25; docs/mall.md
"Issuing open tokens", "The MSP's customer sessions and the open wallet", "Gift certificates"):

- `accept_issue`: a member sells open tokens to one of its customers (POST /v1/mall/open-issues,
  through the inbox: its first answer is final). The MSP checks the kind's rules and the price,
  then makes one lot (open_lots.issue_lot). No cash moves at the sale: the seller keeps the
  customer's money and owes it when the tokens are spent (FIG 18 step 7, open payments).
- the catalog (brands, group discounts, the unit), the product list 2103, the operator's changes;
- the open wallet of a customer (lots, certificates, activity), redeeming and giving certificates:
  a certificate changes holder by changing its lot's customer, never by moving or making tokens.

Every function runs in the caller's transaction; a refusal raises ApiError (nothing written)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ..models.base import utcnow
from ..network import open_money
from ..network.money import BASIS_POINTS, UNITS_PER_CENT
from ..network.open_money import OpenKind
from ..services.errors import ApiError, Conflict, Forbidden, Invalid, Locked, NotFound, first_error
from . import books, members, open_lots, records
from .models import (
    Brand, BrandProduct, CustomerRecord, GiftCertificate, Group, GroupMember, MallAccount, MallTransfer, Member,
    MspSettings, OpenLot, OpenLotMove, OpenPayment, RedeemFailure,
)
from .schemas import (
    ActivityOut, BrandIn, BrandOut, BrandProductOut, GiftCertificateRef, GiftCertificateTermsOut, GroupOfferOut,
    OpenCatalogOut, OpenCustomerIn, OpenGiftIn, OpenGiftOut, OpenIssueIn, OpenIssueOut, OpenLotOut, OpenWalletOut,
    OutstandingOut, RedeemOut, WalletCertificateOut, WalletLotOut,
)
from .vocabulary import ActivityWhat, GiftCertificateStatus, LotMoveReason

# Open tokens and gift certificates live at most five years (a leap day included).
MAX_LIFETIME_DAYS = 5 * 365 + 1
MAX_LIFETIME = timedelta(days=MAX_LIFETIME_DAYS)
MAX_UNIT_VALUE_CENTS = 1_000_000
# The redeem lockout: this many wrong codes within the window lock redeeming for the window.
REDEEM_MAX_FAILURES = 5
REDEEM_WINDOW = timedelta(minutes=15)

M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], raw: Any, what: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise Invalid(f"not {what}: {first_error(e)}") from None


def lot_view(lot: OpenLot, tokens: int) -> OpenLotOut:
    return OpenLotOut(lot_id=lot.id, kind=OpenKind(lot.kind), asset=lot.asset, issuer=lot.issuer, tokens=tokens,
                      expires_at=lot.expires_at)


def code_hint(cert: GiftCertificate) -> str:
    return (cert.code_sha256 or "")[:8]


def certificate_ref(cert: GiftCertificate) -> GiftCertificateRef:
    return GiftCertificateRef(id=cert.id, code_hint=code_hint(cert))


def _customer(db: Session, c: OpenCustomerIn) -> CustomerRecord:
    members.get_member(db, c.home_member)
    return records.customer(db, c.home_member, c.home_user_id, c.full_name)


# ---------------------------------------------------------------- the kinds' terms

@dataclass(frozen=True)
class SaleTerms:
    issuer: str | None
    discount_bp: int        # off the face value, what the customer is charged less
    paid_bp: int            # share of face value the seller was paid (open_lots' paid_bp)


def sale_terms(db: Session, seller: Member, kind: OpenKind, issuer: str | None) -> SaleTerms:
    """Who may sell `kind` of `issuer` and at what discount (docs/mall.md "Issuing open tokens")."""
    if kind == OpenKind.UNIVERSAL:
        if issuer is not None:
            raise Invalid("universal tokens have no issuer")
        return SaleTerms(None, 0, BASIS_POINTS)
    if kind == OpenKind.GIFT_CERTIFICATE:
        if issuer not in (None, seller.member_id):
            raise Forbidden("a member sells only its own gift certificates", reason="not_the_issuer")
        return SaleTerms(seller.member_id, 0, BASIS_POINTS)
    if issuer is None:
        raise Invalid(f"{kind.value} tokens need an issuer")
    if kind in (OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE):
        brand = db.get(Brand, issuer)
        if brand is None:
            raise NotFound(f"no brand {issuer}", reason="unknown_brand")
        if kind == OpenKind.MANUFACTURER:
            return SaleTerms(issuer, brand.discount_bp, open_money.paid_bp(brand.discount_bp))
        if seller.member_id != brand.member_id:
            raise Forbidden(f"only the brand's member ({brand.member_id}) gives {brand.name}'s free tokens",
                            reason="not_brand_member")
        return SaleTerms(issuer, BASIS_POINTS, 0)
    group = db.scalar(select(Group).where(Group.name == issuer))
    if group is None:
        raise NotFound(f"no group {issuer}", reason="unknown_group")
    if db.get(GroupMember, (group.id, seller.member_id)) is None:
        raise Forbidden(f"{seller.member_id} is not in group {issuer}: it does not sell its tokens",
                        reason="not_in_group")
    return SaleTerms(issuer, group.discount_bp, open_money.paid_bp(group.discount_bp))


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is None:
        return
    if expires_at <= now:
        raise Invalid("expires_at must be in the future", reason="bad_expiry")
    if expires_at > now + MAX_LIFETIME:
        raise Invalid(f"open tokens expire within {MAX_LIFETIME_DAYS} days", reason="bad_expiry")


# ---------------------------------------------------------------- FIG 18: a member sells open tokens

def accept_issue(db: Session, seller_id: str, message_id: str, raw: Any, now: datetime | None = None
                 ) -> dict[str, Any]:
    """Check a sale and make its lot (and its gift certificate record 2105). The
    Idempotency-Key is the operation id; the inbox keeps the first answer."""
    now = now or utcnow()
    req = _parse(OpenIssueIn, raw, "an open-token issue")
    if req.operation_id != message_id:
        raise Invalid("the Idempotency-Key of an issue is its operation_id")
    seller = members.require_active(db, seller_id)
    if req.customer.home_member != seller_id:
        raise Forbidden("a member sells open tokens only to its own customers", reason="not_home_member")
    kind = OpenKind(req.kind)
    gift = req.gift_certificate
    if (kind == OpenKind.GIFT_CERTIFICATE) != (gift is not None):
        raise Invalid("a gift certificate, and only one, comes with a gift_certificate {code_sha256}")
    if req.recipient is not None and gift is not None and gift.recipient is not None:
        raise Invalid("name the recipient once")
    recipient = req.recipient or (gift.recipient if gift is not None else None)
    if recipient is not None and kind != OpenKind.GIFT_CERTIFICATE:
        raise Invalid("only a gift certificate has a recipient")
    if recipient is not None and recipient.home_member != seller_id:
        raise Invalid("a gift certificate's recipient is a customer of the same home member",
                      reason="recipient_elsewhere")
    _check_expiry(req.expires_at, now)
    terms = sale_terms(db, seller, kind, req.issuer)
    unit = open_lots.unit_value_cents(db)
    price = open_money.sale_price_cents(req.tokens, unit, terms.discount_bp)
    if req.price_cents != price:
        raise Invalid(f"{req.tokens} {kind.value} tokens cost {price} cents, not {req.price_cents}",
                      reason="wrong_price", price_cents=price)
    buyer = _customer(db, req.customer)
    holder = _customer(db, recipient) if recipient is not None else buyer
    cert: GiftCertificate | None = None
    if gift is not None:
        cert = db.scalar(select(GiftCertificate).where(GiftCertificate.operation_id == req.operation_id))
        if cert is None:
            if db.scalar(select(GiftCertificate.id).where(GiftCertificate.code_sha256 == gift.code_sha256)):
                raise Conflict("another gift certificate has this code", reason="code_taken")
            cert = GiftCertificate(operation_id=req.operation_id, face_units=req.tokens, buyer_customer_id=buyer.id,
                                   recipient_customer_id=None if recipient is None else holder.id,
                                   code_sha256=gift.code_sha256, seller_member_id=seller_id,
                                   expires_at=req.expires_at, status=GiftCertificateStatus.ACTIVE, created_at=now)
            db.add(cert)
            db.flush()
        elif (cert.seller_member_id, cert.code_sha256, cert.face_units) != (seller_id, gift.code_sha256, req.tokens):
            raise Invalid(f"operation {req.operation_id} is already another certificate", code="idempotency_key_reused")
    lot, _made = open_lots.issue_lot(db, open_lots.LotTerms(
        customer_id=holder.id, kind=kind, issuer=terms.issuer, tokens=req.tokens, seller_member_id=seller_id,
        paid_bp=terms.paid_bp, expires_at=req.expires_at, origin=f"issue:{req.operation_id}",
        gift_certificate_id=None if cert is None else cert.id), operation_id=req.operation_id)
    if cert is not None and cert.lot_id is None:
        cert.lot_id = lot.id
        db.flush()
    return OpenIssueOut(operation_id=req.operation_id, lots=[lot_view(lot, req.tokens)],
                        gift_certificate=None if cert is None else certificate_ref(cert)).model_dump(mode="json")


def _held_by_lot(db: Session, lot_ids: list[int]) -> dict[int, int]:
    """Tokens of these lots held by payments (accounts `pending:<operation>:<lot id>`)."""
    if not lot_ids:
        return {}
    wanted = {str(i) for i in lot_ids}
    held: dict[int, int] = {}
    for code, balance in db.execute(select(MallAccount.code, MallAccount.balance)
                                    .where(MallAccount.code.like("pending:%"), MallAccount.balance > 0)):
        lot_id = code.rsplit(":", 1)[-1]
        if lot_id in wanted:
            held[int(lot_id)] = held.get(int(lot_id), 0) + int(balance)
    return held


def outstanding(db: Session, seller_id: str) -> list[OutstandingOut]:
    """The seller's open tokens not spent yet, per asset: what it owes the network
    once they are (its receivable's other side: it kept the customers' cash)."""
    members.get_member(db, seller_id)
    unit = open_lots.unit_value_cents(db)
    rows = db.execute(select(OpenLot, MallAccount.balance).join(MallAccount, MallAccount.id == OpenLot.account_id)
                      .where(OpenLot.seller_member_id == seller_id).order_by(OpenLot.id)).all()
    held = _held_by_lot(db, [lot.id for lot, _ in rows])
    per: dict[str, dict[str, int]] = {}
    for lot, balance in rows:
        tokens, on_hold = int(balance), held.get(lot.id, 0)
        acc = per.setdefault(lot.asset, {"tokens": 0, "held": 0, "value": 0})
        acc["tokens"] += tokens
        acc["held"] += on_hold
        acc["value"] += (tokens + on_hold) * unit * UNITS_PER_CENT * lot.paid_bp // BASIS_POINTS
    out = []
    for asset in sorted(per):
        issuance = books.find_account(db, f"issue:{asset}:{seller_id}")
        kind, issuer = open_money.parse_asset(asset)
        acc = per[asset]
        out.append(OutstandingOut(asset=asset, kind=kind, issuer=issuer,
                                  issued_tokens=-int(issuance.balance) if issuance is not None else 0,
                                  tokens=acc["tokens"], held_tokens=acc["held"], value_micro_cents=acc["value"],
                                  value_cents=acc["value"] // UNITS_PER_CENT))
    return out


# ---------------------------------------------------------------- the catalog and the product list 2103

def catalog(db: Session) -> OpenCatalogOut:
    brands = [brand_view(b) for b in db.scalars(select(Brand).order_by(Brand.brand_id))]
    groups = []
    for g in db.scalars(select(Group).order_by(Group.name)):
        names = db.scalars(select(GroupMember.member_id).where(GroupMember.group_id == g.id)
                           .order_by(GroupMember.member_id)).all()
        groups.append(GroupOfferOut(name=g.name, members=list(names), discount_bp=g.discount_bp))
    return OpenCatalogOut(unit_value_cents=open_lots.unit_value_cents(db), brands=brands, groups=groups,
                          gift_certificate=GiftCertificateTermsOut(max_days=MAX_LIFETIME_DAYS))


def brand_view(b: Brand) -> BrandOut:
    return BrandOut(brand_id=b.brand_id, name=b.name, member_id=b.member_id, discount_bp=b.discount_bp,
                    free_cap_units=int(b.free_cap_units))


def brand_products(db: Session, member_id: str) -> list[BrandProductOut]:
    members.get_member(db, member_id)
    return [BrandProductOut(product_id=p.product_id, brand_id=p.brand_id)
            for p in db.scalars(select(BrandProduct).where(BrandProduct.member_id == member_id)
                                .order_by(BrandProduct.product_id))]


# ---------------------------------------------------------------- the operator's changes (msp admin)

def add_brand(db: Session, terms: BrandIn) -> BrandOut:
    """A new brand, or new terms for one (its name, discount and type 2 cap; the
    lots sold keep the paid_bp of their sale). Its member never changes: that
    member settles for the tokens already out."""
    members.get_member(db, terms.member_id)
    brand = db.get(Brand, terms.brand_id, with_for_update=True)
    if brand is None:
        brand = Brand(brand_id=terms.brand_id, member_id=terms.member_id, name=terms.name,
                      discount_bp=terms.discount_bp, free_cap_units=terms.free_cap_units, created_at=utcnow())
        db.add(brand)
    elif brand.member_id != terms.member_id:
        raise Conflict(f"brand {brand.brand_id} belongs to {brand.member_id}: its member does not change")
    else:
        brand.name, brand.discount_bp, brand.free_cap_units = terms.name, terms.discount_bp, terms.free_cap_units
    db.flush()
    return brand_view(brand)


def all_brands(db: Session) -> list[BrandOut]:
    return [brand_view(b) for b in db.scalars(select(Brand).order_by(Brand.brand_id))]


def add_brand_product(db: Session, brand_id: str, member_id: str, product_id: int) -> BrandProductOut:
    if db.get(Brand, brand_id) is None:
        raise NotFound(f"no brand {brand_id}")
    members.get_member(db, member_id)
    if not 1 <= product_id <= 2**31 - 1:
        raise Invalid("a product id is a positive integer")
    row = db.get(BrandProduct, (member_id, product_id), with_for_update=True)
    if row is None:
        row = BrandProduct(member_id=member_id, product_id=product_id, brand_id=brand_id)
        db.add(row)
        db.flush()
    elif row.brand_id != brand_id:
        raise Conflict(f"product {product_id} of {member_id} is already brand {row.brand_id}'s")
    return BrandProductOut(product_id=row.product_id, brand_id=row.brand_id)


def remove_brand_product(db: Session, member_id: str, product_id: int) -> BrandProductOut:
    row = db.get(BrandProduct, (member_id, product_id), with_for_update=True)
    if row is None:
        raise NotFound(f"product {product_id} of {member_id} is on no brand's list")
    out = BrandProductOut(product_id=row.product_id, brand_id=row.brand_id)
    db.delete(row)
    db.flush()
    return out


def set_group_discount(db: Session, group_name: str, discount_bp: int) -> GroupOfferOut:
    if not 0 <= discount_bp <= BASIS_POINTS:
        raise Invalid(f"a discount is 0 to {BASIS_POINTS} basis points")
    group = db.scalar(select(Group).where(Group.name == group_name).with_for_update())
    if group is None:
        raise NotFound(f"no group {group_name}")
    group.discount_bp = discount_bp
    db.flush()
    names = db.scalars(select(GroupMember.member_id).where(GroupMember.group_id == group.id)
                       .order_by(GroupMember.member_id)).all()
    return GroupOfferOut(name=group.name, members=list(names), discount_bp=group.discount_bp)


def set_unit_value(db: Session, cents: int) -> dict[str, int]:
    """The open unit's value, only before any open token exists (every lot and
    position is counted in it)."""
    if not 1 <= cents <= MAX_UNIT_VALUE_CENTS:
        raise Invalid(f"the open unit is worth 1 to {MAX_UNIT_VALUE_CENTS} cents")
    row = db.get(MspSettings, 1, with_for_update=True)
    if row is None:
        row = MspSettings(id=1, unit_value_cents=cents)
        db.add(row)
    if db.scalar(select(OpenLot.id).limit(1)) is not None and row.unit_value_cents != cents:
        raise Conflict("open tokens were issued: the open unit's value no longer changes", reason="open_tokens_issued")
    row.unit_value_cents = cents
    db.flush()
    return {"unit_value_cents": cents}


def grant_free(db: Session, brand_id: str, home_member: str, home_user_id: str, tokens: int, *,
               full_name: str = "", expires_at: datetime | None = None, operation_id: str | None = None
               ) -> OpenLotOut:
    """The operator gives type 2 tokens of a brand (an outside brand has no server
    to sell them): the brand's member is their seller, paid nothing (paid_bp 0)."""
    brand = db.get(Brand, brand_id)
    if brand is None:
        raise NotFound(f"no brand {brand_id}")
    if not 1 <= tokens <= 10**12:
        raise Invalid("a grant is 1 to 10^12 tokens")
    _check_expiry(expires_at, utcnow())
    try:
        operation_id = str(uuid.UUID(operation_id)) if operation_id else str(uuid.uuid4())
    except ValueError:
        raise Invalid("--operation-id is a UUID") from None
    customer = _customer(db, OpenCustomerIn(home_member=home_member, home_user_id=home_user_id, full_name=full_name))
    lot, _made = open_lots.issue_lot(db, open_lots.LotTerms(
        customer_id=customer.id, kind=OpenKind.MANUFACTURER_FREE, issuer=brand_id, tokens=tokens,
        seller_member_id=brand.member_id, paid_bp=0, expires_at=expires_at, origin=f"grant:{operation_id}"),
        operation_id=operation_id)
    return lot_view(lot, tokens)


# ---------------------------------------------------------------- the open wallet

def _issuer_names(db: Session) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    for b in db.scalars(select(Brand)):
        names[(OpenKind.MANUFACTURER, b.brand_id)] = names[(OpenKind.MANUFACTURER_FREE, b.brand_id)] = b.name
    for m in db.scalars(select(Member)):
        names[(OpenKind.GIFT_CERTIFICATE, m.member_id)] = m.name
    return names


def wallet(db: Session, customer_id: int, now: datetime | None = None) -> OpenWalletOut:
    """A customer's lots (not empty) with their cash value, and the gift
    certificates it holds or bought."""
    now = now or utcnow()
    unit = open_lots.unit_value_cents(db)
    names = _issuer_names(db)
    lots = []
    for b in open_lots.customer_lots(db, customer_id):
        kind = OpenKind(b.lot.kind)
        issuer_name = b.lot.issuer if kind == OpenKind.GROUP else names.get((kind, b.lot.issuer or ""))
        lots.append(WalletLotOut(lot_id=b.lot.id, kind=kind, issuer=b.lot.issuer, issuer_name=issuer_name,
                                 tokens=b.tokens, value_cents=b.tokens * unit, expires_at=b.lot.expires_at,
                                 expired=b.expired(now)))
    certs = []
    q = (select(GiftCertificate, OpenLot, MallAccount.balance)
         .join(OpenLot, OpenLot.id == GiftCertificate.lot_id).join(MallAccount, MallAccount.id == OpenLot.account_id)
         .where(or_(OpenLot.customer_id == customer_id, GiftCertificate.buyer_customer_id == customer_id))
         .order_by(GiftCertificate.id))
    for cert, lot, balance in db.execute(q).all():
        recipient = db.get(CustomerRecord, lot.customer_id) if lot.customer_id != cert.buyer_customer_id else None
        expired = cert.expires_at is not None and cert.expires_at <= now
        certs.append(WalletCertificateOut(
            id=cert.id, code_hint=code_hint(cert), seller_member_id=cert.seller_member_id,
            seller_name=names.get((OpenKind.GIFT_CERTIFICATE, cert.seller_member_id), cert.seller_member_id),
            face_units=int(cert.face_units), face_cents=int(cert.face_units) * unit, tokens=int(balance),
            expires_at=cert.expires_at, expired=expired, held=lot.customer_id == customer_id,
            bought=cert.buyer_customer_id == customer_id,
            recipient_name=None if recipient is None else recipient.full_name,
            status=GiftCertificateStatus.ACTIVE if int(balance) > 0 else GiftCertificateStatus.SPENT))
    return OpenWalletOut(unit_value_cents=unit, value_cents=sum(x.value_cents for x in lots if not x.expired),
                         lots=lots, gift_certificates=certs)


@dataclass(frozen=True)
class _Entry:
    sort: tuple[datetime, int, int]
    out: ActivityOut


def _holding(db: Session, customer_id: int) -> tuple[dict[int, OpenLot], list[OpenLotMove]]:
    """Every lot the customer holds or held, and the moves of those lots."""
    lots = {lot.id: lot for lot in db.scalars(select(OpenLot).where(OpenLot.customer_id == customer_id))}
    moved_ids = db.scalars(select(OpenLotMove.lot_id).where(or_(OpenLotMove.from_customer_id == customer_id,
                                                                OpenLotMove.to_customer_id == customer_id)))
    for lot in db.scalars(select(OpenLot).where(OpenLot.id.in_(set(moved_ids)))):
        lots[lot.id] = lot
    moves = list(db.scalars(select(OpenLotMove).where(OpenLotMove.lot_id.in_(set(lots)))
                            .order_by(OpenLotMove.id)))
    return lots, moves


def _held_by(customer_id: int, lot: OpenLot, moves: list[OpenLotMove], at: datetime) -> bool:
    """Whether the customer held `lot` at time `at` (from its moves)."""
    holder: int | None = None
    first = next((m for m in moves if m.lot_id == lot.id), None)
    holder = first.from_customer_id if first is not None else lot.customer_id
    for m in moves:
        if m.lot_id == lot.id and m.at <= at:
            holder = m.to_customer_id
    return holder == customer_id


def activity(db: Session, customer_id: int, *, limit: int = 50, before: str | None = None) -> list[ActivityOut]:
    """The customer's open-token statement, newest first, gift-card style: each
    transfer into or out of a lot while the customer held it, with the lot's
    balance after it, and each change of holder. A customer's history is short
    (its own lots), so it is built whole and cut at `before` (an entry_id)."""
    lots, moves = _holding(db, customer_id)
    if not lots:
        return []
    by_account = {lot.account_id: lot for lot in lots.values()}
    transfers = db.execute(select(MallTransfer).where(or_(MallTransfer.to_account_id.in_(by_account),
                                                          MallTransfer.from_account_id.in_(by_account)))
                           .order_by(MallTransfer.id)).scalars().all()
    others = {t.from_account_id if t.to_account_id in by_account else t.to_account_id for t in transfers}
    counterpart = {a.id: a for a in db.scalars(select(MallAccount).where(MallAccount.id.in_(others)))}
    ops = {t.operation_id for t in transfers if t.operation_id}
    paid_at = {op: member for op, member in db.execute(
        select(OpenPayment.operation_id, OpenPayment.member_id).where(OpenPayment.operation_id.in_(ops)))}
    balance: dict[int, int] = {}
    entries: list[_Entry] = []
    for t in transfers:
        for account_id, sign in ((t.to_account_id, 1), (t.from_account_id, -1)):
            lot = by_account.get(account_id)
            if lot is None:
                continue
            balance[lot.id] = balance.get(lot.id, 0) + sign * int(t.amount)
            if not _held_by(customer_id, lot, moves, t.created_at):
                continue
            other = counterpart.get(t.from_account_id if sign > 0 else t.to_account_id)
            what, member = _what(lot, other, sign, t, paid_at)
            entries.append(_Entry((t.created_at, 0, t.id), ActivityOut(
                entry_id=f"t{t.id}:{lot.id}", at=t.created_at, lot_id=lot.id, kind=OpenKind(lot.kind),
                issuer=lot.issuer, change=sign * int(t.amount), balance_after=balance[lot.id], what=what,
                member=member)))
    for m in moves:
        if customer_id not in (m.from_customer_id, m.to_customer_id):
            continue
        lot = lots[m.lot_id]
        came = m.to_customer_id == customer_id
        entries.append(_Entry((m.at, 1, m.id), ActivityOut(
            entry_id=f"m{m.id}", at=m.at, lot_id=lot.id, kind=OpenKind(lot.kind), issuer=lot.issuer,
            change=int(m.tokens) if came else -int(m.tokens), balance_after=int(m.tokens) if came else 0,
            what=ActivityWhat.RECEIVED if came else ActivityWhat.GIVEN, member=lot.seller_member_id)))
    entries.sort(key=lambda e: e.sort, reverse=True)
    out = [e.out for e in entries]
    if before is not None:
        ids = [e.entry_id for e in out]
        if before not in ids:
            raise Invalid(f"before: no entry {before} in this wallet")
        out = out[ids.index(before) + 1:]
    return out[:limit]


def _what(lot: OpenLot, other: MallAccount | None, sign: int, t: MallTransfer, paid_at: dict[str, str]
          ) -> tuple[ActivityWhat, str | None]:
    code = other.code if other is not None else ""
    member = paid_at.get(t.operation_id or "")
    if code.startswith("issue:"):
        what = {"grant": ActivityWhat.GRANTED, "change": ActivityWhat.CHANGE}.get(lot.origin.split(":", 1)[0],
                                                                                ActivityWhat.ISSUED)
        return what, lot.seller_member_id
    if code.startswith("pending:"):
        return (ActivityWhat.HELD if sign < 0 else ActivityWhat.RELEASED), member
    if code.startswith("accepted:") and sign > 0:
        return ActivityWhat.REFUNDED, member
    return ActivityWhat.OTHER, member


# ---------------------------------------------------------------- gift certificates change holder

def _certificate_lot(db: Session, cert: GiftCertificate) -> tuple[OpenLot, int]:
    """The certificate's lot and its balance, both rows locked: a payment planning
    on the lot waits (or, first, leaves the balance this sees)."""
    row = db.execute(select(OpenLot, MallAccount.balance).join(MallAccount, MallAccount.id == OpenLot.account_id)
                     .where(OpenLot.id == cert.lot_id).with_for_update()
                     .execution_options(populate_existing=True)).first()
    if row is None:
        raise NotFound("the certificate has no lot")
    return row[0], int(row[1])


def _move_lot(db: Session, cert: GiftCertificate, lot: OpenLot, balance: int, to: CustomerRecord,
              why: LotMoveReason, now: datetime) -> None:
    """Give an unspent certificate's lot to `to`: its customer changes, its tokens stay."""
    if cert.expires_at is not None and cert.expires_at <= now:
        raise Conflict("the gift certificate expired", reason="expired")
    if lot.customer_id != cert.buyer_customer_id:
        raise Conflict("the gift certificate was already given or redeemed", reason="already_redeemed")
    if balance != int(cert.face_units):
        raise Conflict("the gift certificate was spent (or is held by a payment): it stays with its holder",
                       reason="spent")
    db.add(OpenLotMove(lot_id=lot.id, from_customer_id=lot.customer_id, to_customer_id=to.id, tokens=balance,
                       why=why, at=now))
    db.execute(update(OpenLot).where(OpenLot.id == lot.id).values(customer_id=to.id))
    cert.recipient_customer_id = to.id
    db.flush()
    db.refresh(lot)


def redeem_locked_until(db: Session, customer_id: int, now: datetime) -> datetime | None:
    """When redeeming unlocks for this customer, or None: REDEEM_MAX_FAILURES wrong
    codes within REDEEM_WINDOW lock it for REDEEM_WINDOW after the last of them."""
    recent = db.scalars(select(RedeemFailure.at).where(RedeemFailure.customer_id == customer_id,
                                                       RedeemFailure.at > now - 2 * REDEEM_WINDOW)
                        .order_by(RedeemFailure.at.desc()).limit(REDEEM_MAX_FAILURES)).all()
    if len(recent) < REDEEM_MAX_FAILURES:
        return None
    last, fifth = recent[0], recent[-1]
    if last - fifth <= REDEEM_WINDOW and now < last + REDEEM_WINDOW:
        return last + REDEEM_WINDOW
    return None


def redeem(db: Session, customer_id: int, code: str, now: datetime | None = None) -> RedeemOut | ApiError:
    """The caller takes the certificate whose code it typed. A wrong code is
    recorded and RETURNED as the refusal, so that the caller commits the record
    (the lockout counts it) before answering; other refusals raise."""
    now = now or utcnow()
    # one order of row locks everywhere (certificate, then customer, then the lot): no deadlock with a gift
    digest = open_money.gift_code_digest(code) if open_money.normalize_gift_code(code) else ""
    cert = db.scalar(select(GiftCertificate).where(GiftCertificate.code_sha256 == digest).with_for_update()) \
        if digest else None
    customer = db.scalar(select(CustomerRecord).where(CustomerRecord.id == customer_id).with_for_update())
    if customer is None:
        raise NotFound("no such customer")
    until = redeem_locked_until(db, customer_id, now)
    if until is not None:
        raise Locked("too many wrong gift certificate codes: redeeming is locked for a while", reason="locked",
                     locked_until=until.isoformat(),
                     headers={"Retry-After": str(max(1, int((until - now).total_seconds()) + 1))})
    if cert is None:
        db.add(RedeemFailure(customer_id=customer_id, at=now))
        db.flush()
        failures = db.scalar(select(func.count()).select_from(RedeemFailure).where(
            RedeemFailure.customer_id == customer_id, RedeemFailure.at > now - REDEEM_WINDOW)) or 0
        return NotFound("no gift certificate has this code", reason="wrong_code",
                        attempts_left=max(0, REDEEM_MAX_FAILURES - int(failures)))
    lot, balance = _certificate_lot(db, cert)
    if lot.customer_id == customer_id:
        return RedeemOut(gift_certificate=certificate_ref(cert), lot=lot_view(lot, balance), moved=False)
    _move_lot(db, cert, lot, balance, customer, LotMoveReason.REDEEM, now)
    return RedeemOut(gift_certificate=certificate_ref(cert), lot=lot_view(lot, balance), moved=True)


def accept_gift(db: Session, seller_id: str, message_id: str, raw: Any, now: datetime | None = None
                ) -> dict[str, Any]:
    """POST /v1/mall/open-gifts: the seller gives its buyer's certificate to
    another of its customers (FIG 11: the vendor checked username and full name)."""
    now = now or utcnow()
    req = _parse(OpenGiftIn, raw, "a gift")
    if req.gift_operation_id != message_id:
        raise Invalid("the Idempotency-Key of a gift is its gift_operation_id")
    members.require_active(db, seller_id)
    cert = db.scalar(select(GiftCertificate).where(GiftCertificate.operation_id == req.operation_id)
                     .with_for_update())
    if cert is None:
        raise NotFound(f"no gift certificate sold by operation {req.operation_id}")
    if cert.seller_member_id != seller_id:
        raise Forbidden("a member gives only the certificates it sold", reason="not_the_seller")
    if req.to.home_member != seller_id or req.from_.home_member != seller_id:
        raise Invalid("a certificate is given between customers of its seller", reason="recipient_elsewhere")
    giver = records.customer(db, req.from_.home_member, req.from_.home_user_id)
    if giver.id != cert.buyer_customer_id:
        raise Forbidden("only the certificate's buyer gives it", reason="not_the_buyer")
    to = _customer(db, req.to)
    if to.id == giver.id:
        raise Invalid("a certificate is given to someone else")
    lot, balance = _certificate_lot(db, cert)
    _move_lot(db, cert, lot, balance, to, LotMoveReason.GIFT, now)
    return OpenGiftOut(operation_id=req.operation_id, gift_operation_id=req.gift_operation_id,
                       gift_certificate=certificate_ref(cert), lot=lot_view(lot, balance),
                       to={"home_member": to.home_member_id, "home_user_id": to.home_user_id,
                           "full_name": to.full_name}).model_dump(mode="json")
