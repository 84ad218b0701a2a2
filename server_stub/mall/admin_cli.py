"""`tokenrent-server msp admin ...`: the MSP operator's commands. They work on
the MSP's database directly, in one write transaction each, through the same
services as the HTTP routes; a refusal exits 2 with its problem details on
stderr and changes nothing (admin_registry.CommandTable).

The table is the MSP's own (`MSP_COMMANDS`): the vendor's `admin` lists none of these."""
from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..admin_registry import arg
from ..services.errors import Conflict, Invalid
from ..network.open_money import OpenKind
from . import books, directory, members, open_tokens
from .identity import msp_key
from .schemas import BooksReportOut, BrandIn, FeesChange, InvitationOut, MemberOut
from .vocabulary import Accepts, RoyaltyMode
from .commands import command


def _changed(db: Session, member: Any) -> dict[str, Any]:
    """What a change command prints: the member object and the directory's version after it."""
    view = members.member_views(db, [member])[0]
    return {**view.model_dump(mode="json"), "directory_version": members.directory_version(db)[0]}


@command("invite", "create a one-time invitation for a vendor (the code is printed once)", arg("name"))
def _invite(db: Session, a: argparse.Namespace) -> InvitationOut:
    code, inv = members.invite(db, a.name)
    return InvitationOut(invitation=code, name=inv.name, expires_at=inv.expires_at)


def _table(rows: list[MemberOut], extra: dict[str, dict[str, Any]]) -> str:
    head = ("member", "status", "name", "token", "cents", "svc bp", "roy bp", "fixed", "mode", "parent", "groups",
            "base url")
    cells = [head] + [(m.member_id, m.status.value, m.name, m.token.name, str(m.token.value_cents),
                       str(m.fees.service_charge_bp), str(m.fees.royalty_bp), str(m.fees.fixed_fee_cents),
                       m.fees.royalty_mode.value, m.parent or "-", ",".join(m.groups) or "-", m.base_url)
                      for m in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    for i, m in enumerate(rows, start=1):   # a block's reason on the line under its member
        if extra[m.member_id]["blocked_reason"]:
            lines[i] += "\n" + " " * (widths[0] + 2) + f"blocked: {extra[m.member_id]['blocked_reason']}"
    return "\n".join(lines)


@command("members", "list the members (a table; --json: their member objects)",
         arg("--json", action="store_true", help="print JSON"))
def _members(db: Session, a: argparse.Namespace) -> Any:
    rows = members.all_members(db)
    views = members.member_views(db, rows)
    extra = {m.member_id: {"blocked_reason": m.blocked_reason, "joined_at": m.joined_at} for m in rows}
    if a.json:
        return [{**v.model_dump(mode="json"), **extra[v.member_id]} for v in views]
    return _table(views, extra) if views else "no members yet"


@command("block", "block a member: it takes no new operations (those in flight finish)",
         arg("member"), arg("--reason", required=True))
def _block(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return _changed(db, members.block(db, a.member, a.reason))


@command("rekey", "record a member's new network public key (FIG 14: it lost its key file; "
         "check who asks out of band first)", arg("member"),
         # not `network_key`: that is the --network-key option's dest, the MSP's own key file
         arg("new_network_key", metavar="NETWORK_KEY", help="the member's new public key, ed25519:..."),
         arg("--reason", required=True))
def _rekey(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return _changed(db, members.rekey(db, a.member, a.new_network_key, a.reason))


@command("unblock", "unblock a member", arg("member"))
def _unblock(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return _changed(db, members.unblock(db, a.member))


@command("set-fees", "change a member's fee schedule (the options given change, the others stay)",
         arg("member"), arg("--service-charge-bp", type=int), arg("--royalty-bp", type=int),
         arg("--fixed-cents", type=int), arg("--royalty-mode", choices=list(RoyaltyMode)))
def _set_fees(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    change = members.validated(FeesChange, service_charge_bp=a.service_charge_bp, royalty_bp=a.royalty_bp,
                               fixed_fee_cents=a.fixed_cents, royalty_mode=a.royalty_mode)
    return _changed(db, members.set_fees(db, a.member, change))


@command("set-parent", "set (or with --none clear) a member's franchise parent",
         arg("member"), arg("parent", nargs="?"), arg("--none", action="store_true", help="no parent"))
def _set_parent(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    if (a.parent is None) == (not a.none):
        raise Invalid("give a PARENT member or --none, not both")
    return _changed(db, members.set_parent(db, a.member, None if a.none else a.parent))


@command("franchise-value", "FIG 16: set one token value (cents) for every sub-mall of PARENT",
         arg("parent"), arg("cents", type=int))
def _franchise_value(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    children = members.franchise_value(db, a.parent, a.cents)
    return {"parent": a.parent, "value_cents": a.cents,
            "members": [v.model_dump(mode="json") for v in members.member_views(db, children)],
            "directory_version": members.directory_version(db)[0]}


@command("group-add", "put a member in a group (created with its first member)", arg("group"), arg("member"))
def _group_add(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return _changed(db, members.group_add(db, a.group, a.member))


@command("group-remove", "take a member out of a group (an empty group is gone)", arg("group"), arg("member"))
def _group_remove(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return _changed(db, members.group_remove(db, a.group, a.member))


@command("accepts", "whose tokens a member accepts: all, or only the listed members",
         arg("member"), arg("mode", choices=list(Accepts)), arg("members", nargs="*"))
def _accepts(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return _changed(db, members.set_accepts(db, a.member, Accepts(a.mode), a.members))


@command("directory", "print the directory, with its signed entries")
def _directory(db: Session, a: argparse.Namespace) -> Any:
    return directory.current(db, msp_key()).model_dump(mode="json")


@command("verify-books", "check the books: every asset sums to zero, cached balances equal the transfers "
                         "(exit 2 when they do not)")
def _verify_books(db: Session, a: argparse.Namespace) -> BooksReportOut:
    r = books.verify(db)
    report = BooksReportOut(ok=r.ok, totals=r.totals, mismatched_accounts=r.mismatched_accounts,
                            negative_accounts=r.negative_accounts, wrong_asset_transfers=r.wrong_asset_transfers)
    if not r.ok:
        raise Conflict("the books do not balance", report=report.model_dump(mode="json"))
    return report


@command("audit", "read every member's audit and check them against the MSP's records (after quiescence)")
def _audit(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    from .audit import run_audit

    db.rollback()   # the audit reads in its own sessions and talks to the members; no transaction stays open
    report = run_audit()
    if not report.ok:
        raise Conflict("the audit found problems", problems=report.problems)
    return {"ok": True, "members": report.members, "completed": report.completed, "failed": report.failed}


# ---------------------------------------------------------------- open tokens (open_tokens.py)

def _customer_ref(text: str) -> tuple[str, str]:
    member, sep, user = text.partition(":")
    if not sep or not member or not user:
        raise Invalid("--customer is MEMBER:HOME_USER_ID")
    return member, user


def _aware_time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError("give the time with its zone, e.g. 2027-01-31T00:00:00+00:00")
    return t


@command("brands-add", "add a brand (or change its name, discount and type 2 cap); MEMBER settles for it",
         arg("brand_id"), arg("name"), arg("member"), arg("--discount-bp", type=int, default=0),
         arg("--free-cap-units", type=int, default=0))
def _brands_add(db: Session, a: argparse.Namespace) -> Any:
    return open_tokens.add_brand(db, members.validated(BrandIn, brand_id=a.brand_id, name=a.name, member_id=a.member,
                                                       discount_bp=a.discount_bp, free_cap_units=a.free_cap_units))


@command("brands", "list the brands (JSON)")
def _brands(db: Session, a: argparse.Namespace) -> Any:
    return open_tokens.all_brands(db)


@command("brand-products-add", "put a member's product on a brand's list (the product list 2103)",
         arg("brand"), arg("member"), arg("product_id", type=int))
def _brand_products_add(db: Session, a: argparse.Namespace) -> Any:
    return open_tokens.add_brand_product(db, a.brand, a.member, a.product_id)


@command("brand-products-remove", "take a member's product off its brand's list", arg("member"),
         arg("product_id", type=int))
def _brand_products_remove(db: Session, a: argparse.Namespace) -> Any:
    return open_tokens.remove_brand_product(db, a.member, a.product_id)


@command("brand-products", "a member's products on brands' lists (JSON)", arg("member"))
def _brand_products(db: Session, a: argparse.Namespace) -> Any:
    return open_tokens.brand_products(db, a.member)


@command("group-discount", "the discount (basis points) of a group's open tokens", arg("group"),
         arg("bp", type=int))
def _group_discount(db: Session, a: argparse.Namespace) -> Any:
    return open_tokens.set_group_discount(db, a.group, a.bp)


@command("open-unit", "the open unit's value in cents (refused once any open token was issued)",
         arg("cents", type=int))
def _open_unit(db: Session, a: argparse.Namespace) -> Any:
    return open_tokens.set_unit_value(db, a.cents)


@command("grant-open", "give a customer free type 2 tokens of a brand (an outside brand's, from the operator)",
         arg("kind", choices=[OpenKind.MANUFACTURER_FREE.value]), arg("brand"),
         arg("--customer", required=True, help="MEMBER:HOME_USER_ID"), arg("tokens", type=int),
         arg("--full-name", default=""),
         arg("--expires-at", type=_aware_time, help="ISO 8601 with its zone (default: never)"),
         arg("--operation-id", help="a UUID: the same grant again gives nothing twice"))
def _grant_open(db: Session, a: argparse.Namespace) -> Any:
    member, user = _customer_ref(a.customer)
    return open_tokens.grant_free(db, a.brand, member, user, a.tokens, full_name=a.full_name, expires_at=a.expires_at,
                                  operation_id=a.operation_id)


from . import backups_cli  # noqa: E402,F401  (FIG 14's command joins the table)
