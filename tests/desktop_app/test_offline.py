"""Off-line and back: a restart while the store server is down shows the library from the
cache and the off-line banner; when the server comes back (same address), the app notices
by itself, the banner goes and the store fills. A real server of its own, stopped and
started again."""
from __future__ import annotations

from desktop_app.app import Options, StoreApp
from tests.desktop_app.conftest import close_app, sign_in


def test_back_online_after_starting_offline(qtbot, app_home, own_server):
    user = own_server.new_user(tokens=500)
    first = StoreApp(Options(server=own_server.base_url))
    first.start()
    qtbot.waitUntil(lambda: first.ready, timeout=30000)
    first.window.sign_in_dialog.reject()
    sign_in(qtbot, first, user)
    state = first.state
    qtbot.waitUntil(lambda: state.device_id is not None, timeout=60000)
    product = next(p for p in state.products if p.name == "Software C")
    offer = product.offer_of_kind("rent_uses")
    state.api.place_order([{"offer_id": offer.id, "quantity": offer.tiers[0].quantity}],
                          state.device_id, [], "offline-" + user.username)
    state.refresh_library()
    qtbot.waitUntil(lambda: any(e.name == "Software C" for e in state.entries), timeout=30000)
    close_app(qtbot, first)

    own_server.stop()                                       # the store goes away
    second = StoreApp(Options(server=own_server.base_url))
    second.PROBE_MS = 300
    second.start()
    window = second.window
    try:
        qtbot.waitUntil(lambda: second.state.offline, timeout=30000)
        assert window.offline_banner.isVisible() and "Off-line" in window.offline_banner.text()
        window.show_page(window.library)
        library = window.library
        qtbot.waitUntil(lambda: library.model.rowCount() == 1, timeout=30000)   # from the cache
        assert library.model.entry(0).name == "Software C"
        assert window.store.products.rowCount() == 0 and not second.ready

        own_server.start()                                  # back, at the same address
        qtbot.waitUntil(lambda: not second.state.offline, timeout=30000)
        qtbot.waitUntil(lambda: window.store.products.rowCount() > 0, timeout=30000)
        assert not window.offline_banner.isVisible()
        assert second.ready and any(p.name == "Software C" for p in second.state.products)
        window.sign_in_dialog.reject()                      # asked to sign in, as at any start
    finally:
        close_app(qtbot, second)
