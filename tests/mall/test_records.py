"""The MSP's records (server_stub/mall/records.py) on a real migrated database,
SQLite and PostgreSQL: each is written once per key, a repeat with the same
terms is the first record, a repeat with others is refused and changes nothing."""
from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from server_stub.db import read_session, write_session
from server_stub.mall import members, records
from server_stub.mall.models import CustomerRecord, FeeRecord, Movement
from server_stub.mall.schemas import JoinIn
from server_stub.mall.vocabulary import FeeKind, MovementKind, MovementStatus
from server_stub.services.errors import ApiError
from tests.support.msp import join_body


def new_member(name: str) -> str:
    with write_session() as db:
        code, _ = members.invite(db, name)
    with write_session() as db:
        return members.join(db, JoinIn.model_validate(join_body(code, Ed25519PrivateKey.generate(), name=name))
                            ).member.member_id


def test_a_customer_is_recorded_once_per_home_member_and_user(mall_db):
    home = new_member("Home")
    with write_session() as db:
        first = records.customer(db, home, "42", "Ada Lovelace")
    with write_session() as db:
        again = records.customer(db, home, "42", "Ada King")   # a new name replaces the old one
    assert again.id == first.id and again.full_name == "Ada King"
    with write_session() as db:
        other = records.customer(db, home, "43", "Grace Hopper")
    assert other.id != first.id
    with pytest.raises(ApiError):
        with write_session() as db:
            records.customer(db, home, "", "Nobody")
    with read_session() as db:
        assert db.scalar(select(func.count()).select_from(CustomerRecord)) == 2


def test_token_counts_only_grow_and_circulation_follows(mall_db):
    member = new_member("Counter")
    with write_session() as db:
        rec = records.count_tokens(db, member, issued=100, exchanged_in=30)
        assert rec.circulation == 130
        rec = records.count_tokens(db, member, spent=20, exchanged_out=10, expired=5)
    assert (rec.issued, rec.spent, rec.exchanged_in, rec.exchanged_out, rec.expired) == (100, 20, 30, 10, 5)
    assert rec.circulation == 95
    for bad in ({"issued": -1}, {"spent": 1.5}, {"issued": True}):
        with pytest.raises(ApiError):
            with write_session() as db:
                records.count_tokens(db, member, **bad)
    with pytest.raises(ValueError):
        with write_session() as db:
            records.count_tokens(db, member, minted=1)
    with pytest.raises(ApiError) as missing:
        with write_session() as db:
            records.count_tokens(db, "m-zzzzzzzzzz", issued=1)
    assert missing.value.status_code == 404
    with read_session() as db:
        assert records.token_record(db, member).circulation == 95


def test_a_movement_is_recorded_once_and_finishes_once(mall_db):
    a, b = new_member("From"), new_member("To")
    terms = records.MovementTerms(str(uuid.uuid4()), MovementKind.EXCHANGE, a, b, tokens_from=12, tokens_to=3,
                                  value_cents=30)
    with write_session() as db:
        first, created = records.start_movement(db, terms)
    assert created and first.status == MovementStatus.PENDING
    with write_session() as db:
        again, created = records.start_movement(db, terms)
    assert not created and again.id == first.id
    with pytest.raises(ApiError) as reused:
        with write_session() as db:
            records.start_movement(db, records.MovementTerms(terms.operation_id, MovementKind.EXCHANGE, a, b, 12, 4, 30))
    assert reused.value.status_code == 422 and reused.value.extra["code"] == "idempotency_key_reused"
    with write_session() as db:
        done = records.finish_movement(db, terms.operation_id, MovementStatus.COMPLETED)
    assert done.status == MovementStatus.COMPLETED and done.completed_at is not None
    with write_session() as db:   # the same end again: nothing to do
        assert records.finish_movement(db, terms.operation_id, MovementStatus.COMPLETED).status == "completed"
    with pytest.raises(ApiError) as late:
        with write_session() as db:
            records.finish_movement(db, terms.operation_id, MovementStatus.FAILED, "too late")
    assert late.value.status_code == 409
    with read_session() as db:
        (row,) = db.scalars(select(Movement).where(Movement.operation_id == terms.operation_id)).all()
        assert (row.status, row.reason, row.tokens_to) == ("completed", None, 3)


def test_a_fee_is_recorded_once_per_operation_member_and_kind(mall_db):
    member = new_member("Payer")
    op = str(uuid.uuid4())
    with write_session() as db:
        fee = records.add_fee(db, member, op, FeeKind.ROYALTY, 1234)
        records.add_fee(db, member, op, FeeKind.SERVICE_CHARGE, 50)
    with write_session() as db:
        assert records.add_fee(db, member, op, FeeKind.ROYALTY, 1234).id == fee.id
    with pytest.raises(ApiError):
        with write_session() as db:
            records.add_fee(db, member, op, FeeKind.ROYALTY, 1235)
    with read_session() as db:
        fees = dict(db.execute(select(FeeRecord.kind, FeeRecord.amount_micro_cents)
                               .where(FeeRecord.operation_id == op)).all())
    assert fees == {"royalty": 1234, "service_charge": 50}
