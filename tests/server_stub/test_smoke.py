"""The real server starts, migrates and answers on both databases."""


def test_health_and_openapi(server):
    assert server.api("GET", "/v1/health").json() == {"status": "ok"}
    spec = server.api("GET", "/openapi.json").json()
    assert "/v1/accounts" in spec["paths"] and "/v1/token-purchases" in spec["paths"]


def test_register_sign_in_me(server):
    user = server.register()
    me = server.me(user)
    assert me["username"] == user.username
    assert me["status"] == "inactive"
    assert me["available_tokens"] == 0
    assert me["min_tokens"] == 100


def test_grant_activates_and_ledger_balances(server):
    user = server.new_user(tokens=150)
    me = server.me(user)
    assert me["status"] == "active" and me["available_tokens"] == 150
    check = server.ledger_check()
    assert check["ok"], check
