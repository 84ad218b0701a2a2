"""Rate limits on guessing (services/rate_limits.py), on SQLite and PostgreSQL,
with two server processes on one database: what one process counts, the other
sees. Every test starts from "nothing limited" and turns on the limits it tests
with small numbers and short windows."""
import ipaddress
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from tests.support.server import Server, migrated_database

GOOD = "4242424242424242"
DECLINED = "4000000000000002"
LIMITS = ("SIGN_IN_PER_ADDRESS", "SIGN_IN_PER_ACCOUNT", "REGISTRATIONS_PER_ADDRESS", "PIN_PER_ADDRESS",
          "PIN_PER_ACCOUNT", "CARD_DECLINES_PER_ADDRESS", "CARD_DECLINES_PER_ACCOUNT")
NOTHING_LIMITED = {f"TOKENRENT_RATE_LIMIT_{name}": "off" for name in LIMITS}


def limits(**on) -> dict:
    """Server env: only these limits, e.g. limits(pin_per_address="3/3600")."""
    return {**NOTHING_LIMITED, **{f"TOKENRENT_RATE_LIMIT_{k.upper()}": v for k, v in on.items()}}


@pytest.fixture
def two_servers(server_factory, tmp_path):
    """(a, b): two server processes on ONE database (same data dir, so the same
    PIN pepper and signing key), as two hosts behind a load balancer."""
    second = []

    def make(env: dict) -> tuple[Server, Server]:
        a = server_factory(env=env)
        b = Server(a.db_url, tmp_path / "second", env={**env, "TOKENRENT_DATA_DIR": str(a.workdir / "data")},
                   backend=a.backend).start()
        second.append(b)
        return a, b

    yield make
    for b in second:
        b.stop()


def sign_in(srv, username, password="wrong password", via=None):
    headers = {"X-Forwarded-For": via} if via else {}
    return srv.api("POST", "/v1/sessions", json={"username": username, "password": password}, headers=headers)


def assert_limited(r, what):
    assert r.status_code == 429, r.text
    wait = int(r.headers["Retry-After"])
    assert wait >= 1
    assert what in r.json()["detail"], r.json()
    return wait


def transfer(srv, sender, recipient, tokens=10, pin=None, key=None, via=None):
    headers = {"Idempotency-Key": key} if key else {}
    if via:
        headers["X-Forwarded-For"] = via
    return srv.api("POST", "/v1/transfers", sender, headers=headers, json={
        "to_username": recipient.username, "to_full_name": recipient.full_name, "tokens": tokens,
        "pin": pin or sender.pin})


def buy(srv, user, number=GOOD, key=None, via=None, tokens=10):
    headers = {"Idempotency-Key": key} if key else {}
    if via:
        headers["X-Forwarded-For"] = via
    return srv.api("POST", "/v1/token-purchases", user, headers=headers, json={
        "method": "card", "tokens": tokens, "card_number": number, "card_expiry": "12/40", "card_cvc": "123"})


# ---------------------------------------------------------------- sign-in

def test_credential_stuffing_from_one_address_is_stopped_across_processes(two_servers):
    a, b = two_servers(limits(sign_in_per_address="6/3600"))
    real = a.register(sign_in=False)
    # six failures over six accounts (existing or not), spread over both processes
    codes = [sign_in((a, b)[i % 2], f"victim{i}").status_code for i in range(5)]
    codes.append(sign_in(b, real.username).status_code)
    assert codes == [401] * 6
    wait = assert_limited(sign_in(a, "victim99"), "failed sign-ins")
    assert 590 <= wait <= 600  # one interval (3600 s / 6) until one more fits, not the whole window
    # the right password is refused too: a limited client learns nothing about passwords
    assert_limited(sign_in(b, real.username, real.password), "failed sign-ins")


def test_parallel_burst_tests_no_more_passwords_than_the_limit(two_servers):
    a, b = two_servers(limits(sign_in_per_address="5/3600"))
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda i: sign_in((a, b)[i % 2], f"burst{i}").status_code, range(12)))
    assert sorted(codes) == [401] * 5 + [429] * 7, codes


def test_successful_sign_ins_are_not_counted(two_servers):
    a, b = two_servers(limits(sign_in_per_address="3/3600"))
    u = a.register(sign_in=False)
    for i in range(8):
        assert sign_in((a, b)[i % 2], u.username, u.password).status_code == 200
    assert [sign_in(b, u.username).status_code for _ in range(3)] == [401] * 3
    assert_limited(sign_in(a, u.username, u.password), "failed sign-ins")


def test_the_window_passes_and_sign_ins_are_accepted_again(two_servers):
    a, b = two_servers(limits(sign_in_per_address="2/6"))  # a burst of 2, then one every 3 s
    u = a.register(sign_in=False)
    assert [sign_in(a, "nobody1").status_code, sign_in(b, "nobody2").status_code] == [401, 401]
    wait = assert_limited(sign_in(a, u.username, u.password), "failed sign-ins")
    assert wait <= 3
    time.sleep(wait + 0.1)
    assert sign_in(b, u.username, u.password).status_code == 200


def test_many_addresses_on_one_account_hit_the_account_limit(two_servers):
    """Behind a trusted proxy each guess comes from another address; the
    account's own limit still stops them. The lockout (5 in a row) is set out
    of the way here so the 429 is the account limit's."""
    env = {**limits(sign_in_per_account="3/3600", sign_in_per_address="3/3600"),
           "TOKENRENT_TRUSTED_PROXIES": "127.0.0.1", "TOKENRENT_MAX_FAILED_ATTEMPTS": "100"}
    a, b = two_servers(env)
    u = a.register(sign_in=False)
    codes = [sign_in((a, b)[i % 2], u.username, via=f"198.51.100.{i + 1}").status_code for i in range(3)]
    assert codes == [401] * 3
    assert_limited(sign_in(b, u.username, u.password, via="198.51.100.50"), "failed sign-ins")
    # another account from a fresh address is not limited
    v = a.register(sign_in=False)
    assert sign_in(a, v.username, v.password, via="198.51.100.60").status_code == 200


def test_the_lockout_still_locks_after_five_wrong_passwords(two_servers):
    a, b = two_servers(limits(sign_in_per_address="50/3600", sign_in_per_account="50/3600"))
    u = a.register(sign_in=False)
    codes = [sign_in((a, b)[i % 2], u.username).status_code for i in range(5)]
    assert codes == [401, 401, 401, 401, 423]


# ---------------------------------------------------------------- registration

def test_registration_hammering_is_stopped_and_creates_nothing(two_servers):
    a, b = two_servers(limits(registrations_per_address="3/3600"))
    first = a.register(sign_in=False)
    taken = b.api("POST", "/v1/accounts", json={"username": first.username, "password": "another pass 1",
                                                "pin": "1234", "full_name": "X", "email": "x@example.com"})
    assert taken.status_code == 409  # a refused registration counts too
    b.register(sign_in=False)
    r = a.api("POST", "/v1/accounts", json={"username": "one_too_many", "password": "correct horse 1",
                                            "pin": "1234", "full_name": "Y", "email": "y@example.com"})
    assert_limited(r, "registrations")
    users = {u["username"] for u in a.api("GET", "/v1/admin/users", a.admin()).json()}
    assert "one_too_many" not in users and first.username in users


# ---------------------------------------------------------------- PINs

def test_wrong_pins_over_many_accounts_are_stopped_and_a_limited_transfer_moves_nothing(two_servers):
    a, b = two_servers(limits(pin_per_address="4/12"))  # a burst of 4, then one every 3 s
    senders = [a.new_user(tokens=100) for _ in range(5)]
    recipient = a.register()
    codes = [transfer((a, b)[i % 2], senders[i], recipient, pin="0000").status_code for i in range(4)]
    assert codes == [403] * 4
    assert_limited(transfer(b, senders[4], recipient, pin="0000"), "wrong PINs")
    # the RIGHT PIN is refused as well, before anything ran: nothing moved, nothing stored
    key = str(uuid.uuid4())
    wait = assert_limited(transfer(a, senders[4], recipient, tokens=7, key=key), "wrong PINs")
    assert a.me(senders[4])["available_tokens"] == 100 and a.me(recipient)["available_tokens"] == 0
    time.sleep(wait + 0.1)
    # the same key later runs the transfer for real: the 429 was not its first answer
    r = transfer(b, senders[4], recipient, tokens=7, key=key)
    assert r.status_code == 201, r.text
    assert transfer(a, senders[4], recipient, tokens=7, key=key).json() == r.json()
    assert a.me(senders[4])["available_tokens"] == 93 and a.me(recipient)["available_tokens"] == 7
    assert a.ledger_check()["ok"]


def test_pin_limit_per_account_counts_across_addresses(two_servers):
    env = {**limits(pin_per_account="2/3600", pin_per_address="50/3600"),
           "TOKENRENT_TRUSTED_PROXIES": "127.0.0.1"}
    a, b = two_servers(env)
    sender, recipient = a.new_user(tokens=100), a.register()
    assert [transfer((a, b)[i], sender, recipient, pin="0000", via=f"203.0.113.{i + 1}").status_code
            for i in range(2)] == [403, 403]
    assert_limited(transfer(b, sender, recipient, via="203.0.113.9"), "wrong PINs")
    other = a.new_user(tokens=100)
    assert transfer(a, other, recipient, via="203.0.113.9").status_code == 201


def test_successful_transfers_are_not_counted(two_servers):
    a, b = two_servers(limits(pin_per_address="1/3600", pin_per_account="1/3600"))
    sender, recipient = a.new_user(tokens=100), a.register()
    for i in range(6):
        assert transfer((a, b)[i % 2], sender, recipient, tokens=1).status_code == 201
    assert transfer(a, sender, recipient, pin="0000").status_code == 403
    assert_limited(transfer(b, sender, recipient, tokens=1), "wrong PINs")


# ---------------------------------------------------------------- cards

def test_declined_card_hammering_is_stopped(two_servers):
    a, b = two_servers({**limits(card_declines_per_address="3/3600"), "TOKENRENT_TRUSTED_PROXIES": "127.0.0.1"})
    users = [a.register() for _ in range(4)]
    carder = "192.0.2.1"
    assert [buy((a, b)[i % 2], users[i], DECLINED, via=carder).status_code for i in range(3)] == [402] * 3
    # a good card from the same address is refused before it is charged
    key = str(uuid.uuid4())
    assert_limited(buy(b, users[3], GOOD, key=key, via=carder), "declined cards")
    assert a.api("GET", "/v1/token-purchases", users[3]).json() == []
    assert a.me(users[3])["available_tokens"] == 0
    # paying by check tests no card: not limited
    r = a.api("POST", "/v1/token-purchases", users[3], json={"method": "check", "tokens": 10}, headers={
        "X-Forwarded-For": carder})
    assert r.status_code == 202, r.text
    # nothing was stored under the refused key: from another address it runs for real, once
    r = buy(a, users[3], GOOD, key=key, via="192.0.2.2")
    assert r.status_code == 201 and r.json()["available_tokens"] == 10, r.text
    assert buy(b, users[3], GOOD, key=key, via="192.0.2.2").json() == r.json()
    assert a.me(users[3])["available_tokens"] == 10


def test_a_replayed_decline_is_not_counted_again(two_servers):
    a, b = two_servers(limits(card_declines_per_address="2/3600"))
    u = a.register()
    key = str(uuid.uuid4())
    first = buy(a, u, DECLINED, key=key)
    assert first.status_code == 402
    for srv in (b, a, b):  # the stored answer, replayed: no new charge, no new count
        again = buy(srv, u, DECLINED, key=key)
        assert again.status_code == 402 and again.json() == first.json()
    assert buy(b, u, DECLINED).status_code == 402
    assert_limited(buy(a, u, GOOD), "declined cards")


def test_card_limit_per_account_counts_across_addresses(two_servers):
    env = {**limits(card_declines_per_account="2/3600", card_declines_per_address="50/3600"),
           "TOKENRENT_TRUSTED_PROXIES": "127.0.0.1", "TOKENRENT_MAX_CARD_DECLINES": "100"}
    a, b = two_servers(env)
    u, other = a.register(), a.register()
    assert [buy((a, b)[i], u, DECLINED, via=f"192.0.2.{i + 1}").status_code for i in range(2)] == [402, 402]
    assert_limited(buy(b, u, GOOD, via="192.0.2.77"), "declined cards")
    r = buy(a, other, GOOD, via="192.0.2.77")
    assert r.status_code == 201 and r.json()["available_tokens"] == 10


def test_successful_card_purchases_are_not_counted(two_servers):
    a, b = two_servers(limits(card_declines_per_address="1/3600", card_declines_per_account="1/3600"))
    u = a.register()
    for i in range(5):
        assert buy((a, b)[i % 2], u).status_code == 201
    assert a.me(u)["available_tokens"] == 50


# ---------------------------------------------------------------- the client address

def test_forwarded_for_is_honoured_only_from_a_trusted_proxy(server_factory):
    untrusting = server_factory(env=limits(sign_in_per_address="2/3600"))
    for i in range(2):
        assert sign_in(untrusting, "nobody", via=f"198.51.100.{i + 1}").status_code == 401
    # a client cannot escape its limit by inventing X-Forwarded-For: it is still 127.0.0.1
    assert_limited(sign_in(untrusting, "nobody", via="198.51.100.3"), "failed sign-ins")

    behind_proxy = server_factory(env={**limits(sign_in_per_address="2/3600"),
                                       "TOKENRENT_TRUSTED_PROXIES": "127.0.0.0/8, ::1"})
    for _ in range(2):
        assert sign_in(behind_proxy, "nobody", via="198.51.100.1").status_code == 401
    assert_limited(sign_in(behind_proxy, "nobody", via="198.51.100.1"), "failed sign-ins")
    # a client's own X-Forwarded-For entry (left of what the proxy added) is not believed
    assert_limited(sign_in(behind_proxy, "nobody", via="203.0.113.5, 198.51.100.1"), "failed sign-ins")
    assert sign_in(behind_proxy, "nobody", via="198.51.100.2").status_code == 401


def test_client_address_rules():
    from server_stub.services.rate_limits import client_address

    proxies = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"))
    assert client_address("192.0.2.1", [], proxies) == "192.0.2.1"
    assert client_address("192.0.2.1", ["203.0.113.9"], proxies) == "192.0.2.1"  # peer is no proxy
    assert client_address("10.1.1.1", ["203.0.113.9"], proxies) == "203.0.113.9"
    # two proxies in a row; the client's own entry on the left is ignored
    assert client_address("10.1.1.1", ["6.6.6.6, 203.0.113.9", "10.2.2.2"], proxies) == "203.0.113.9"
    assert client_address("10.1.1.1", ["not-an-ip"], proxies) == "10.1.1.1"
    assert client_address("10.1.1.1", [], proxies) == "10.1.1.1"
    # IPv6 clients count per /64; IPv4-mapped addresses as IPv4
    assert client_address("2001:db8:1:2:aaaa::1", [], proxies) == "2001:db8:1:2::/64"
    assert client_address("2001:db8:1:2:bbbb::7", [], proxies) == "2001:db8:1:2::/64"
    assert client_address("::ffff:192.0.2.8", [], proxies) == "192.0.2.8"
    assert client_address(None, [], proxies) == "unknown"


# ---------------------------------------------------------------- configuration

def test_rate_limits_can_be_turned_off(server_factory):
    srv = server_factory(env={**limits(sign_in_per_address="1/3600", registrations_per_address="1/3600"),
                              "TOKENRENT_RATE_LIMITS_ENABLED": "false"})
    for _ in range(3):
        srv.register(sign_in=False)
        assert sign_in(srv, "nobody").status_code == 401


def test_a_bad_limit_setting_stops_the_server(tmp_path):
    import subprocess
    import sys

    from tests.support.server import ROOT

    res = subprocess.run([sys.executable, "-m", "server_stub", "serve", "--db", f"sqlite:///{tmp_path}/x.db",
                          "--data-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "TOKENRENT_RATE_LIMIT_PIN_PER_ACCOUNT": "twenty"})
    assert res.returncode == 2
    assert "TOKENRENT_RATE_LIMIT_PIN_PER_ACCOUNT must be COUNT/SECONDS" in res.stderr


def test_parse_rate():
    from server_stub.services.rate_limits import Rate, parse_rate

    assert parse_rate("x", "20/3600") == Rate(20, 3600)
    assert parse_rate("x", " off ") is None and parse_rate("x", "0") is None
    for bad in ("20", "20/", "/60", "0/60", "-1/60", "a/b", "20/3600/1", "1000001/1000"):
        with pytest.raises(ValueError):
            parse_rate("x", bad)
    r = Rate(6, 60)  # a burst of 6, then one every 10 s
    assert (r.interval_ms, r.tolerance_ms) == (10_000, 50_000)


# ---------------------------------------------------------------- the table stays bounded

def test_expired_rows_are_swept(backend, tmp_path):
    from server_stub.db import read_session
    from server_stub.models.rate_limit import RateLimit
    from server_stub.services import rate_limits

    with migrated_database(backend, tmp_path, rate_limit_registrations_per_address="1/3"):
        for i in range(30):
            rate_limits.count_attempt(rate_limits.REGISTRATION, f"10.0.0.{i}")
        with read_session() as db:
            assert db.scalar(select(func.count()).select_from(RateLimit)) == 30
        time.sleep(3.1)  # every key's state has expired
        rate_limits.count_attempt(rate_limits.REGISTRATION, "10.0.1.1")
        with read_session() as db:
            rows = db.execute(select(RateLimit.subject)).scalars().all()
        assert rows == ["10.0.1.1"]
