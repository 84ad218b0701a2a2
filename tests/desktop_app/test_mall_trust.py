"""The agent's trust in the mall through the storefront: a real MSP and two vendors
(tests/support/network.py, SQLite and PostgreSQL), the real storefront signed in at A, the
real license agent (CLI) in a temp home. Showing the mall pins the MSP's key in the agent;
the first order at B gives the agent B's MSP-signed entry, so the agent installs B's code."""
from __future__ import annotations

import pytest

from desktop_app.agent.bridge import AgentBridge
from tests.desktop_app.conftest import sign_in
from tests.desktop_app.test_mall import b_offer, browse_b, mall_app, net, open_malls  # noqa: F401  (fixtures)
from tests.support.network import funded_user

pytestmark = pytest.mark.timeout(300)


def agent_status(app) -> dict:
    result = AgentBridge(app.state.agent.home).call(["status", "--json"])
    return result.answer


def test_buying_at_b_makes_the_agent_trust_bs_code_key_and_install_its_code(qtbot, mall_app, net):  # noqa: F811
    directory = net.msp.get("/v1/mall/directory").json()
    b_kids = [k["kid"] for k in directory["members"][[m["member_id"] for m in directory["members"]].index(net.b_id)]
              ["code_keys"]]
    user = funded_user(net.a, 100)
    sign_in(qtbot, mall_app, user)
    open_malls(qtbot, mall_app, net)
    qtbot.waitUntil(lambda: agent_status(mall_app)["mall_key"] == directory["msp"]["network_key"], timeout=30000)
    assert not set(b_kids) & set(agent_status(mall_app)["trusted_keys"])   # pinned the mall, not B yet

    store, _model = browse_b(qtbot, mall_app, net)
    product, offer = b_offer(store)
    b_user = mall_app.state.mall.sessions.client(mall_app.state.mall.mall.member(net.b_id)).me().username
    net.b.admin_cli("grant", b_user, str(offer.tokens), "--kind", "standard")
    store.details.show_product(product)
    store.details.findChild(type(store.home_button), f"add_{offer.id}").click()
    dialog = mall_app.window.member_order_dialog
    qtbot.waitUntil(lambda: dialog.quote is not None and dialog.quote.shortage == 0, timeout=20000)
    with qtbot.waitSignal(dialog.ordered, timeout=60000) as ordered:
        dialog.place_button.click()
    receipt = ordered.args[0]
    assert [d.license_id for d in receipt.deliveries]

    def installed() -> bool:
        return any(lic["license_id"] == str(receipt.deliveries[0].license_id)
                   for lic in agent_status(mall_app)["licenses"])
    qtbot.waitUntil(installed, timeout=30000)
    status = agent_status(mall_app)
    assert {kid: status["trusted_members"][kid] for kid in b_kids} == {kid: net.b_id for kid in b_kids}
    assert "refused a code" not in mall_app.window.banner.text()
    # the library shows it as the agent counts it (the storefront read the agent after installing)
    qtbot.waitUntil(lambda: any(e.agent_known and e.license_id == str(receipt.deliveries[0].license_id)
                                for e in mall_app.state.entries), timeout=30000)


def test_a_blocked_member_is_not_trusted_and_nothing_is_ordered(qtbot, mall_app, net):  # noqa: F811
    """Blocked at the MSP after the directory was read: the agent refuses its entry, the
    dialog says why, and no order is placed at B (its tokens stay)."""
    user = funded_user(net.a, 100)
    sign_in(qtbot, mall_app, user)
    store, model = browse_b(qtbot, mall_app, net)
    product, offer = b_offer(store, kind="purchase")
    member = mall_app.state.mall.mall.member(net.b_id)
    b_user = mall_app.state.mall.sessions.client(member).me().username
    net.b.admin_cli("grant", b_user, str(offer.tokens), "--kind", "standard")
    store.details.show_product(product)
    store.details.findChild(type(store.home_button), f"add_{offer.id}").click()
    dialog = mall_app.window.member_order_dialog
    qtbot.waitUntil(lambda: dialog.quote is not None and dialog.quote.shortage == 0, timeout=20000)
    net.msp.admin("block", net.b_id, "--reason", "test")
    try:
        dialog.place_button.click()
        qtbot.waitUntil(lambda: not dialog.busy and "does not trust" in dialog.banner.text(), timeout=30000)
        assert "not active" in dialog.banner.text()
        assert mall_app.state.mall.sessions.client(member).me().available_tokens == offer.tokens
    finally:
        net.msp.admin("unblock", net.b_id)
