"""A customer's open-token lots (server_stub/mall/open_lots.py) on a real
migrated MSP database, SQLite and PostgreSQL: a lot is made once per origin,
its tokens come from the issuance account, and the books stay balanced."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from server_stub.db import read_session, write_session
from server_stub.mall import books, open_lots, records
from server_stub.models.base import utcnow
from server_stub.network.open_money import OpenKind
from server_stub.services.errors import ApiError
from tests.mall.test_records import new_member


def _terms(customer_id: int, seller: str, **over) -> open_lots.LotTerms:
    base = dict(customer_id=customer_id, kind=OpenKind.UNIVERSAL, issuer=None, tokens=500, seller_member_id=seller,
                paid_bp=10000, expires_at=None, origin=f"issue:{uuid.uuid4()}")
    base.update(over)
    return open_lots.LotTerms(**base)


def test_a_lot_is_made_once_and_its_tokens_come_from_issuance(mall_db):
    seller = new_member("Seller")
    with write_session() as db:
        customer = records.customer(db, seller, "7", "Ada Lovelace").id
        assert open_lots.unit_value_cents(db) == 1
    terms = _terms(customer, seller)
    with write_session() as db:
        lot, made = open_lots.issue_lot(db, terms)
        lot_id = lot.id
    assert made
    with write_session() as db:
        again, made_again = open_lots.issue_lot(db, terms)
    assert (again.id, made_again) == (lot_id, False)
    with pytest.raises(ApiError):   # the same origin with other terms: refused, nothing moves
        with write_session() as db:
            open_lots.issue_lot(db, _terms(customer, seller, tokens=501, origin=terms.origin))
    with read_session() as db:
        [held] = open_lots.customer_lots(db, customer)
        assert (held.lot.id, held.tokens) == (lot_id, 500)
        issuance = books.find_account(db, f"issue:open:universal:{seller}")
        assert issuance is not None and issuance.balance == -500
        assert books.verify(db).ok


def test_lots_of_every_kind_and_their_plan_view(mall_db):
    seller = new_member("Brand maker")
    soon = utcnow() + timedelta(days=3)
    with write_session() as db:
        customer = records.customer(db, seller, "8", "Grace Hopper").id
        open_lots.issue_lot(db, _terms(customer, seller, kind=OpenKind.MANUFACTURER, issuer="acme", paid_bp=9000,
                                       expires_at=soon))
        open_lots.issue_lot(db, _terms(customer, seller, kind=OpenKind.GROUP, issuer="north", tokens=50))
    with pytest.raises(ApiError):   # a kind that needs an issuer, without one
        with write_session() as db:
            open_lots.issue_lot(db, _terms(customer, seller, kind=OpenKind.GROUP, issuer=None))
    with read_session() as db:
        plan = open_lots.plan_lots(open_lots.customer_lots(db, customer))
        assert [(p.kind, p.issuer, p.tokens) for p in plan] == [(OpenKind.MANUFACTURER, "acme", 500),
                                                               (OpenKind.GROUP, "north", 50)]
        assert plan[0].expires_at is not None and abs((plan[0].expires_at - soon).total_seconds()) < 1
        report = books.verify(db)
        assert report.ok and report.totals["open:group:north"] == 0
