"""The open-token panel filled from replies of the contract's shapes: what it shows (the MSP's
figures), its chart (the MSP's balance_after), and the certificates it offers to give."""
from __future__ import annotations

from desktop_app.api.replies import OpenActivityLine, OpenTokenPurchase, OpenWallet
from desktop_app.open.page import OpenTokensPanel, givable
from desktop_app.wire import parse
from tests.desktop_app.open.test_dialogs import PURCHASE
from tests.desktop_app.open.test_model import ACTIVITY, WALLET


def test_the_panel_shows_the_msps_figures(qtbot, state):
    panel = OpenTokensPanel(state)
    qtbot.addWidget(panel)
    assert panel.total.text() == "Open tokens: —"
    panel.set_account((parse(OpenWallet, WALLET), parse(list[OpenActivityLine], ACTIVITY)))
    assert panel.total.text() == "Open tokens worth $45.00 (one open token is $0.01)"
    day = parse(OpenWallet, WALLET).gift_certificates[0].expires_at.astimezone().strftime("%Y-%m-%d")
    assert panel.certificates.text() == (f"Gift certificates: $25.00 from Mall A, 2,500 open tokens left, "
                                         f"expires {day} (yours)")
    assert panel.lots.rowCount() == 3 and panel.activity.rowCount() == 3
    assert [y for _x, y in panel.chart.points()] == [2500.0, 5000.0, 4500.0]
    state.meChanged.emit(None)                     # signed out: nothing of the last user stays
    assert panel.lots.rowCount() == 0 and panel.chart.points() == [] and panel.total.text() == "Open tokens: —"
    assert panel.certificates.text() == ""


def test_only_issued_certificates_not_given_yet_can_be_given():
    base = PURCHASE
    given = {**base["gift_certificate"], "give_status": "given"}
    rows = parse(list[OpenTokenPurchase], [base, {**base, "id": 2, "status": "awaiting_payment"},
                                           {**base, "id": 3, "kind": "universal", "gift_certificate": None},
                                           {**base, "id": 4, "gift_certificate": given}])
    assert [p.id for p in givable(rows)] == [1]


def test_short_of_the_stores_tokens_in_a_mall_offers_to_pay_the_rest_with_open_tokens(qtbot, state):
    from desktop_app.api.client import ShortOfTokens
    from desktop_app.api.replies import Mall, Shortage
    from desktop_app.orders.page import ShortageDialog
    from tests.desktop_app.test_mall_models import MALL

    body = {"detail": "short", "required_tokens": 100, "available_tokens": 40, "shortage": 60}
    error = ShortOfTokens("short", 402, body, parse(Shortage, body))
    alone = ShortageDialog(state, error)
    qtbot.addWidget(alone)
    assert "shortage_open" not in alone.ways                      # no mall: no open tokens
    state.mall.mall = parse(Mall, MALL)
    dialog = ShortageDialog(state, error)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.payWithOpen):
        dialog.ways["shortage_open"].click()
