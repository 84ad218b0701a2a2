"""The admin CLI on the server's real database, and idempotent demo data."""
import json

from tests.support.server import Server


def test_admin_cli_grant_credit_list_verify(server):
    u = server.register()
    out = json.loads(server.admin_cli("grant", u.username, "120", "--kind", "incentive",
                                      "--expires-at", "2099-01-01T00:00:00+00:00").stdout)
    assert out["available_tokens"] == 120 and out["status"] == "active"
    p = server.api("POST", "/v1/token-purchases", u, json={"tokens": 50, "method": "check"}).json()
    listed = json.loads(server.admin_cli("list-purchases", "--status", "pending").stdout)
    assert p["id"] in [x["id"] for x in listed]
    credited = json.loads(server.admin_cli("credit-purchase", str(p["id"])).stdout)
    assert credited["status"] == "credited"
    assert server.me(u)["available_tokens"] == 170
    assert json.loads(server.admin_cli("verify-ledger").stdout)["ok"] is True


def test_admin_cli_refusals_exit_2_and_change_nothing(server):
    u = server.register()
    res = server.admin_cli("grant", "no_such_user_zz", "10", check=False)
    assert res.returncode == 2 and "no such user" in res.stderr
    res = server.admin_cli("grant", u.username, "0", check=False)
    assert res.returncode == 2
    res = server.admin_cli("confirm-purchase", "999999", check=False)
    assert res.returncode == 2
    res = server.admin_cli("grant", u.username, "5", "--expires-at", "2099-01-01T00:00:00", check=False)
    assert res.returncode == 2                      # no UTC offset
    assert server.me(u)["available_tokens"] == 0


def test_demo_data_is_idempotent(backend, server_factory):
    srv = server_factory(demo=True)
    # a second start on the same database loads the demo again: nothing doubles
    srv.stop()
    again = Server(srv.db_url, srv.workdir, demo=True, backend=backend).start()
    try:
        assert "demo admin: admin / admin-demo-pass" in again.log_text()
        from tests.support.server import TestUser

        demo = again.sign_in(TestUser("demo", "demo-pass-1", "1234", "Demo User"))
        me = again.me(demo)
        assert me["available_tokens"] == 500 and me["status"] == "active"
        admin = again.sign_in(TestUser("admin", "admin-demo-pass", "0000", "Demo Vendor Admin"))
        offers = again.api("GET", "/v1/token-offers").json()
        assert offers["token_price_cents"] == 10 and offers["min_tokens"] == 100
        bundles = {b["name"]: (b["tokens"], b["discount_percent"]) for b in offers["bundles"]}
        assert bundles["Silver"] == (100, 5) and bundles["Gold"] == (200, 10)
        assert again.api("GET", "/v1/admin/ledger-check", admin).json()["ok"]
        again.admin_cli("set-policy", "--token-price-cents", "12")
    finally:
        again.stop()
    third = Server(srv.db_url, srv.workdir, demo=True, backend=backend).start()
    try:   # the operator's change survives the next demo start
        assert third.api("GET", "/v1/token-offers").json()["token_price_cents"] == 12
    finally:
        third.stop()


def test_reset_credentials_gives_a_new_password_and_pin_and_signs_every_session_out(server):
    u = server.register()
    for _ in range(6):                                   # lock the sign-in out
        server.api("POST", "/v1/sessions", json={"username": u.username, "password": "wrong password"})
    bad = server.admin_cli("reset-credentials", u.username, "--password", "short", "--pin", "1234", check=False)
    assert bad.returncode == 2 and "password" in bad.stderr   # the schema's rule, nothing changed
    out = json.loads(server.admin_cli("reset-credentials", u.username, "--password", "a new password 9",
                                      "--pin", "8642").stdout)
    assert out["username"] == u.username and out["sessions_revoked"] is True
    assert server.api("GET", "/v1/me", u).status_code == 401             # the old session is gone
    assert server.api("POST", "/v1/sessions", json={"username": u.username, "password": u.password}
                      ).status_code == 401
    fresh = server.api("POST", "/v1/sessions", json={"username": u.username, "password": "a new password 9"})
    assert fresh.status_code == 200, fresh.text                         # the lockout ended
    res = server.admin_cli("reset-credentials", "no_such_user_zz", "--password", "long enough 1", "--pin", "1234",
                           check=False)
    assert res.returncode == 2 and "no such user" in res.stderr


def test_a_command_argument_may_not_hide_an_option_of_its_parser():
    import argparse

    import pytest

    from server_stub.admin_registry import CommandTable, arg

    table = CommandTable()

    @table.command("rekey", "a command whose positional shares the dest of --network-key",
                   arg("network_key"))
    def _rekey(db, a):
        return {}

    parser = argparse.ArgumentParser()
    parser.add_argument("--network-key")
    with pytest.raises(RuntimeError, match="'network_key' would hide the option"):
        table.add_parsers(parser, "command")
