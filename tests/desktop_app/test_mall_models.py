"""The mall's item models under qtmodeltester, filled with replies of the shapes the vendor
sends (built through desktop_app.wire.parse, as the client does), and the one display
conversion (desktop_app.mall.rates)."""
from __future__ import annotations

from desktop_app.api.replies import Exchange, Mall
from desktop_app.mall.model import Balance, ExchangeModel, MallMembersModel
from desktop_app.mall.rates import MemberPricing, home_tokens_for
from desktop_app.wire import parse

MALL = {"member_id": "m-a", "msp_url": "http://msp", "directory_version": 3, "members": [
    {"member_id": "m-b", "name": "Mall B", "base_url": "http://b", "token": {"name": "Token-B", "value_cents": 5},
     "status": "active"},
    {"member_id": "m-a", "name": "Mall A", "base_url": "http://a", "token": {"name": "Token-A", "value_cents": 10},
     "status": "active"},
    {"member_id": "m-c", "name": "Mall C", "base_url": "http://c", "token": {"name": "Token-C", "value_cents": 7},
     "status": "blocked"}]}


def exchange(id_, status, created="2025-01-02T10:00:00Z"):
    return parse(Exchange, {"id": id_, "status": status, "to_member": "m-b", "tokens_from": 100, "tokens_to": 200,
                            "value_cents": 1000, "reason": "" if status != "failed" else "member blocked",
                            "created_at": created, "finished_at": None})


def test_members_model(qtmodeltester):
    model = MallMembersModel()
    model.set_mall(parse(Mall, MALL))
    model.set_balances({"m-a": Balance(300), "m-b": Balance(None, "not reachable")})
    qtmodeltester.check(model)
    assert [model.data(model.index(r, 0)) for r in range(3)] == ["Mall A (your store)", "Mall B", "Mall C"]
    assert model.data(model.index(0, 4)) == "300 Token-A ($30.00)"
    assert model.data(model.index(1, 4)) == "not reachable"
    assert model.data(model.index(2, 3)) == "blocked"


def test_exchange_model(qtmodeltester):
    model = ExchangeModel()
    model.set_mall(parse(Mall, MALL))
    model.set_exchanges([exchange("x1", "completed", "2025-01-01T10:00:00Z"), exchange("x2", "pending")])
    qtmodeltester.check(model)
    assert [x.id for x in model.pending()] == ["x2"]
    model.update(exchange("x2", "failed"))
    model.update(exchange("x3", "pending", "2025-01-03T10:00:00Z"))
    qtmodeltester.check(model)
    assert model.data(model.index(0, 4)) == "pending" and model.data(model.index(1, 4)) == "failed"
    assert model.data(model.index(1, 4), 3) == "member blocked"          # ToolTipRole: the server's reason
    assert model.data(model.index(0, 3)) == "200 Token-B"


def test_prices_at_another_member_are_rounded_up_to_whole_home_tokens():
    mall = parse(Mall, MALL)
    c, a = mall.member("m-c"), mall.home
    assert home_tokens_for(3, 7, 10) == 3          # 21 cents: 2.1 -> 3 Token-A
    assert home_tokens_for(10, 7, 10) == 7
    assert home_tokens_for(0, 7, 10) == 0
    pricing = MemberPricing(c, a)
    assert pricing.tokens_text(3) == "3 Token-C ($0.21, 3 Token-A at today's rate)"
    assert pricing.cell_text(1000) == "1,000 ($70.00)\n≈ 700 Token-A"
    assert "rounded up" in pricing.tooltip()


def test_a_members_tier_choice_is_one_short_line():
    from desktop_app.api.replies import MallMember, MemberToken
    from desktop_app.mall.rates import MemberPricing
    member = MallMember(member_id="m-b", name="Mall B", base_url="http://b", token=MemberToken(name="Token-B", value_cents=5),
                        status="active")
    home = MallMember(member_id="m-a", name="Mall A", base_url="http://a", token=MemberToken(name="Token-A", value_cents=10),
                      status="active")
    assert MemberPricing(member, home).choice_text(30) == "30 ($1.50, ≈ 15 Token-A)"
