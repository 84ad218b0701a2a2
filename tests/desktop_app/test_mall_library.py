"""The library across the mall's members: a real MSP and two demo vendors that both sell
"Software C" under the same product id (tests/support/network.py, SQLite and PostgreSQL), the
real storefront signed in at A and the real license agent. The user rents it at A and at B:
the agent holds both licenses (each store numbers its licenses from 1), the library shows both,
B's program package comes from B and is checked against B's code keys (vouched for by the
pinned MSP key, never A's), each launches and counts down its own license, and B's running-low
notice leads to B's store."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from desktop_app.agent.bridge import AgentBridge
from desktop_app.api.client import new_idempotency_key
from desktop_app.api.replies import OfferKind
from desktop_app.library import install as installer
from tests.desktop_app.conftest import sign_in
from tests.desktop_app.test_mall import b_offer, browse_b, mall_app, net, open_malls  # noqa: F401  (fixtures)
from tests.support.network import funded_user

pytestmark = pytest.mark.timeout(400)
PRODUCT = "Software C"      # rented by uses, with an example program (the dice game) at both stores


def agent_cli(app, *args: str) -> subprocess.CompletedProcess:
    env = AgentBridge(app.state.agent.home).env()
    return subprocess.run([sys.executable, "-m", "license_agent", *args], capture_output=True, text=True, env=env)


def left(app) -> dict:
    status = json.loads(agent_cli(app, "status", "--json").stdout)
    return {lic["product_ref"]: lic["remaining"] for lic in status["licenses"]}


def entry_of(app, issuer):
    return next((e for e in app.state.entries if e.issuer == issuer and e.name == PRODUCT), None)


def test_the_same_product_from_home_and_from_b_lives_side_by_side(qtbot, mall_app, net, monkeypatch):  # noqa: F811
    app, state, window = mall_app, mall_app.state, mall_app.window
    user = funded_user(net.a, 500)
    sign_in(qtbot, app, user)
    open_malls(qtbot, app, net)
    qtbot.waitUntil(lambda: state.device_id is not None and state.catalog_loaded, timeout=30000)

    # at home (A): the home order flow has its own tests; here its answer is all that matters
    home_product = next(p for p in state.products if p.name == PRODUCT)
    home_offer = home_product.offer_of_kind(OfferKind.RENT_USES)
    receipt = state.api.place_order([{"offer_id": home_offer.id, "quantity": 10}], state.device_id, [],
                                    new_idempotency_key())
    state.install_codes(receipt.deliveries)
    qtbot.waitUntil(lambda: entry_of(app, None) is not None and entry_of(app, None).agent_known, timeout=30000)

    # at B, through the storefront: the same product id, B's license numbered by B
    store, _model = browse_b(qtbot, app, net)
    product, offer = b_offer(store, PRODUCT, "rent_uses")
    assert str(product.id) == str(home_product.id)                  # the collision this is about
    pid = str(product.id)
    member = state.mall.mall.member(net.b_id)
    net.b.admin_cli("grant", state.mall.sessions.client(member).me().username, "100", "--kind", "standard")
    store.details.show_product(product)
    store.details.findChild(type(store.home_button), f"add_{offer.id}").click()
    dialog = window.member_order_dialog
    qtbot.waitUntil(lambda: dialog.quote is not None and dialog.quote.shortage == 0, timeout=20000)
    with qtbot.waitSignal(dialog.ordered, timeout=60000) as ordered:
        dialog.place_button.click()
    b_receipt = ordered.args[0]
    assert b_receipt.deliveries[0].download_url                       # B's program, from B

    # both in the agent and in the library; B's program downloaded and installed on its own
    qtbot.waitUntil(lambda: entry_of(app, net.b_id) is not None and entry_of(app, net.b_id).agent_known
                    and entry_of(app, net.b_id).installed, timeout=90000)
    assert left(app) == {f"home/{pid}": 10, f"{net.b_id}/{pid}": 10}
    b_entry, home_entry = entry_of(app, net.b_id), entry_of(app, None)
    assert b_entry.license is not None and b_entry.license.id == b_receipt.deliveries[0].license_id  # B's list
    assert b_entry.store_name == "Mall B" and b_entry.store_url == f"tokenrent://product/{net.b_id}/{pid}"
    assert home_entry.store_url == f"tokenrent://product/{pid}"
    page = window.library
    rows = [page.model.data(page.model.index(r, 0)) for r in range(page.model.rowCount())]
    assert f"{PRODUCT} (Mall B)" in rows and PRODUCT in rows
    ambiguous = agent_cli(app, "check", pid, "--json")               # a bare id names neither
    assert ambiguous.returncode == 2 and json.loads(ambiguous.stdout)["error"] == "ambiguous_product"

    # B's package was checked against B's code keys, as the agent trusts them through the mall
    directory = net.msp.get("/v1/mall/directory").json()
    b_kids = {k["kid"] for m in directory["members"] if m["member_id"] == net.b_id for k in m["code_keys"]}
    installed_b = installer.installed(state.install_dir, f"{net.b_id}/{pid}")
    assert installed_b is not None and installed_b.kid in b_kids
    assert installed_b.directory.is_relative_to(state.install_dir / f"@{net.b_id}" / pid)
    assert installer.installed(state.install_dir, pid) is None        # the home one is not installed yet
    # ... and never against the home vendor's keys: B's package does not install as A's product
    client = state.mall.sessions.client(member)
    package = requests.get(client.url(b_receipt.deliveries[0].download_url), headers=client.auth_headers(),
                           timeout=30)
    assert package.status_code == 200
    b_file = app.state.paths.downloads_dir / "b-package.trpkg"
    b_file.write_bytes(package.content)
    with pytest.raises(installer.InstallError):
        installer.install_downloaded(b_file, app.state.install_dir / "elsewhere", pid, state.cache.vendor_key)

    # the home one downloads from home and is checked against home's keys
    assert page.select_product(pid)
    page.buttons["download"].click()
    qtbot.waitUntil(lambda: entry_of(app, None).installed, timeout=90000)
    assert installer.installed(state.install_dir, pid).kid not in b_kids

    # each launches through the agent with its own license (the game closes itself, as a user would)
    real_command = installer.launch_command
    monkeypatch.setattr(installer, "launch_command",
                        lambda root, key: (lambda c: ([*c[0], "--quit-after", "300"], c[1]))(real_command(root, key)))
    for key, expected in ((f"{net.b_id}/{pid}", {f"home/{pid}": 10, f"{net.b_id}/{pid}": 9}),
                          (pid, {f"home/{pid}": 9, f"{net.b_id}/{pid}": 9})):
        assert page.select_product(key)
        page.buttons["launch"].click()
        qtbot.waitUntil(lambda: "ran and has finished" in page.banner.text() or "may not" in page.banner.text(),
                        timeout=60000)
        assert "ran and has finished" in page.banner.text(), page.banner.text()
        assert left(app) == expected
        page.banner.clear_message()

    # B's rental runs low: the notice is B's, and its link opens B's store at that product
    assert agent_cli(app, "consume", f"{net.b_id}/{pid}", "6").returncode == 0    # 3 left: the threshold
    with qtbot.waitSignal(state.lowRental, timeout=30000) as low:
        state.refresh_library()
    assert low.args[0].issuer == net.b_id and low.args[0].remaining == 3
    assert entry_of(app, None).remaining == 9 and not entry_of(app, None).warning
    window.browse_member(state.mall.mall.member(state.mall.mall.member_id))   # back home first
    assert window.open_link(low.args[0].store_url)
    qtbot.waitUntil(lambda: store.browsed is not None and store.details.product is not None
                    and str(store.details.product.id) == pid, timeout=30000)
    assert store.browsed.member.member_id == net.b_id
    # the product page says what the user holds of that store's product, not of the other's
    assert "3 of 10 uses left" in store.details.held.text() and "9 of 10" not in store.details.held.text()
    store.browse_home()
    assert store.show_product(pid)
    assert "9 of 10 uses left" in store.details.held.text() and "3 of 10" not in store.details.held.text()

    # extending B's license from the Library orders at B, for that license; the home one does not move
    window.show_page(page)
    assert page.select_product(f"{net.b_id}/{pid}")
    assert page.buttons["extend"].isEnabled()
    page.buttons["extend"].click()
    qtbot.waitUntil(lambda: window.member_order_dialog is not dialog, timeout=30000)
    extension = window.member_order_dialog
    assert extension.items[0]["license_id"] == b_entry.license.id
    qtbot.waitUntil(lambda: extension.quote is not None and extension.quote.shortage == 0, timeout=20000)
    with qtbot.waitSignal(extension.ordered, timeout=60000) as again:
        extension.place_button.click()
    delivered = again.args[0].deliveries[0]
    assert delivered.license_id == b_entry.license.id and delivered.serial == 2
    qtbot.waitUntil(lambda: left(app) == {f"home/{pid}": 9, f"{net.b_id}/{pid}": 13}, timeout=30000)


def test_a_members_link_opens_its_store_before_the_mall_was_shown(qtbot, mall_app, net):  # noqa: F811
    """A notice's link clicked right after start (the mall's directory not read yet this run)."""
    sign_in(qtbot, mall_app, funded_user(net.a, 100))
    assert mall_app.state.mall.mall is None
    store = mall_app.window.store
    assert mall_app.window.open_link(f"tokenrent://product/{net.b_id}/1")
    qtbot.waitUntil(lambda: store.browsed is not None and store.details.product is not None, timeout=30000)
    assert store.browsed.member.member_id == net.b_id and str(store.details.product.id) == "1"
    assert not mall_app.window.open_link("tokenrent://product/m-nosuchmemb/1")   # not in this mall: said
    assert "not in your mall" in mall_app.window.banner.text()
