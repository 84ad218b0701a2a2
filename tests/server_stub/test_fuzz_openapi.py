"""/openapi.json is the real API: schemathesis (its CLI, every phase: coverage,
fuzzing, stateful) with ALL its checks against a real server, on SQLite and
PostgreSQL, signed in as a user (the user routes) and as an admin (the admin
routes); any finding fails the test, except the few listed in EXCUSED, each
with the reason it is not a fault of the document.

The user has a registered device and licenses, and one extra positive pass uses
a copy of the document whose id parameters and properties are the real ids
(device, offers, tiers, licenses, products, orders), so that orders and quotes
get past the lookups into planning, holds, licenses and codes."""
from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.store import order, register_device

EXAMPLES = 8      # per operation and phase: a minute or two per database
SEED = 20261201

# A valid request may also be refused for the state it meets, not its shape:
# 402 (short of tokens) and 423 (locked after repeated wrong PINs or declined
# cards) are both documented; schemathesis counts only 401/403/404/409/429 so.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "402", "403", "404", "409", "423", "429", "5xx"]
"""

# Rules JSON Schema cannot state: each is written in the operation's
# description and answered with a documented 422 (problem type
# .../invalid-request); schemathesis, which only knows the schema, calls these
# valid requests refused. (check, operation, what the 422's detail says);
# only a 422 with that detail is excused, nothing else of that operation.
EXCUSED = [
    # an order item's quantity must be a tier of a rental offer, and a purchase
    # or convert offer takes none; which kind an offer_id is lives in the database
    ("positive_data_acceptance", r"POST /v1/(quotes|orders)|PUT /v1/order-list",
     r"is a rental: give a quantity|is not a tier of offer|takes no quantity"),
    # a convert item needs the license_id of the rental it converts (database again)
    ("positive_data_acceptance", r"POST /v1/(quotes|orders)",
     r"a convert item needs the license_id|is for another product than offer"),
    # a card number's Luhn check digit, and an expiry not in the past
    ("positive_data_acceptance", r"POST /v1/token-purchases", r"fails the Luhn check|card has expired"),
    # the offer's kind is in the path: purchase/convert take tokens, rentals tiers
    # (distinct quantities, at most 36500 days for time)
    ("positive_data_acceptance", r"PUT /v1/admin/products/\{product_id\}/offers/\{kind\}",
     r"offer has a price in tokens and no tiers|offer has tiers|tier quantity"),
    # the same Idempotency-Key with another request is refused (DESIGN.md, docs/api.md);
    # the fuzzer reuses short key values across different bodies
    ("positive_data_acceptance", r"POST /v1/.*", r"Idempotency-Key was already used with a different request"),
    # a file that is not a signed TokenRent package needs ?version= (the server reads the file)
    ("positive_data_acceptance", r"POST /v1/admin/products/\{product_id\}/versions",
     r"a file that is not a TokenRent package needs a product id and a version|the package is refused"),
    # a grant's expiry must be in the future (and within 100 years): relative to now
    ("positive_data_acceptance", r"POST /v1/admin/grants", r"expires_at must be in the future"),
]


@dataclass
class Finding:
    check: str
    operation: str
    code: str
    title: str
    message: str
    status: int | None
    body: str

    def excused(self) -> bool:
        detail = _detail(self.body)
        return self.status == 422 and any(
            self.check == check and re.fullmatch(op, self.operation) and re.search(why, detail)
            for check, op, why in EXCUSED)

    def __str__(self) -> str:
        return f"{self.operation} [{self.check} {self.code} {self.title}] -> {self.status} {self.body[:300]}\n" \
               f"    {self.message[:400]}"


def _detail(body: str) -> str:
    try:
        return str(json.loads(body).get("detail", ""))
    except (ValueError, AttributeError):
        return ""


def _read_report(report: Path) -> tuple[list[Finding], Counter]:
    """The findings of a run, and how often each (operation, status) was answered."""
    out, answered = [], Counter()
    for line in report.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        for interaction in recorder.get("interactions", {}).values():
            if interaction.get("response"):
                answered[(recorder["label"], interaction["response"]["status_code"])] += 1
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                failure = check["failure_info"]["failure"]
                response = (recorder["interactions"].get(case_id) or {}).get("response") or {}
                content = response.get("content") or {}
                body = base64.b64decode(content["$base64"]).decode(errors="replace") if "$base64" in content \
                    else str(content.get("string", ""))
                out.append(Finding(check["name"], failure.get("operation", recorder["label"]), failure["code"],
                                   failure["title"], failure["message"], response.get("status_code"), body))
    return out, answered


def _schemathesis(spec: str, base_url: str, token: str, workdir: Path, name: str, *filters: str,
                  mode: str = "all") -> tuple[list[Finding], Counter, str]:
    """One run of the schemathesis CLI: its findings and answers (from the NDJSON report), its output."""
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    report = workdir / f"{name}.ndjson"
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run", spec,
           "--url", base_url, "--checks", "all", "--mode", mode, "-H", f"Authorization: Bearer {token}",
           "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--generation-deterministic",
           "--workers", "1", "--continue-on-failure",
           "--report", "ndjson", "--report-ndjson-path", str(report), *filters]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=workdir)
    assert report.exists(), res.stdout[-3000:] + res.stderr[-3000:]
    return *_read_report(report), res.stdout


def _with_real_values(spec: dict, real: dict[str, list]) -> dict:
    """The spec where every request body property and parameter named in `real`
    is one of the real values (null stays allowed where it was)."""
    spec = copy.deepcopy(spec)

    def only(schema: dict, values: list) -> dict:
        branches = schema.get("anyOf", [])
        if any(b.get("type") == "null" for b in branches):
            return {"anyOf": [{"enum": values}, {"type": "null"}]}
        return {"enum": values}

    for comp in spec.get("components", {}).get("schemas", {}).values():
        if comp.get("additionalProperties") is not False:
            continue   # not a request body (those refuse unknown fields): answers keep their schema
        for name, prop in (comp.get("properties") or {}).items():
            if name in real:
                comp["properties"][name] = only(prop, real[name])
            elif name.endswith("_ids") and name[:-1] in real and prop.get("type") == "array":
                prop["items"] = only(prop["items"], real[name[:-1]])
    for ops in spec["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["name"] in real and "schema" in param:
                    param["schema"] = only(param["schema"], real[param["name"]])
    return spec


def _prepared_user(srv):
    """A funded user with a device and two licenses; the real ids the fuzzer may use."""
    user = srv.new_user(tokens=100_000)
    keys = register_device(srv, user)
    products = srv.api("GET", "/v1/products").json()
    offers = [o for p in products for o in p["offers"]]
    by_kind = {o["kind"]: o for o in offers}
    rental = by_kind["rent_uses"]
    r = order(srv, user, keys, [{"offer_id": rental["id"], "quantity": rental["tiers"][0]["quantity"]}])
    assert r.status_code == 201, r.text
    license_id = r.json()["deliveries"][0]["license_id"]
    r = order(srv, user, keys, [{"offer_id": by_kind["rent_processings"]["id"],
                                 "quantity": by_kind["rent_processings"]["tiers"][0]["quantity"]}])
    assert r.status_code == 201, r.text
    real = {
        "device_id": [keys.device_id],
        "offer_id": sorted(o["id"] for o in offers),
        "quantity": sorted({t["quantity"] for o in offers for t in o.get("tiers", [])}),
        "license_id": [license_id, r.json()["deliveries"][0]["license_id"]],
        "product_id": sorted(p["id"] for p in products),
        "order_id": [r.json()["id"]],
    }
    return user, real


# 2xx answers each run must get at least (the session run signs itself out early)
MIN_SUCCESSES = {"user": 100, "user-real-ids": 50, "session": 1, "admin": 50}


@pytest.mark.slow
def test_the_published_api_is_the_real_one(server_factory, tmp_path):
    srv = server_factory(demo=True)
    user, real = _prepared_user(srv)
    admin = srv.admin()
    leaver = srv.new_user()   # signs itself out (DELETE /v1/sessions/current): not the main user
    url = srv.base_url + "/openapi.json"
    published = srv.api("GET", "/openapi.json").json()
    with_ids = tmp_path / "openapi-real-ids.json"
    with_ids.write_text(json.dumps(_with_real_values(published, real)))

    findings, answered = [], {}
    runs = [
        ("user", url, user.token, ["--exclude-path-regex", "^/v1/admin", "--exclude-path", "/v1/sessions/current"],
         "all"),
        ("user-real-ids", str(with_ids), user.token,
         ["--exclude-path-regex", "^/v1/admin", "--exclude-path", "/v1/sessions/current"], "positive"),
        ("session", url, leaver.token, ["--include-path", "/v1/sessions/current"], "all"),
        ("admin", url, admin.token, ["--include-path-regex", "^/v1/admin"], "all"),
    ]
    for name, spec, token, filters, mode in runs:
        found, answered[name], output = _schemathesis(spec, srv.base_url, token, tmp_path, name, *filters,
                                                      mode=mode)
        findings += found
        # the run really exercised the API (a broken set-up would test nothing)
        assert re.search(r"Tested: *[1-9]", output), output[-3000:]
        successes = sum(n for (_op, status), n in answered[name].items() if 200 <= status < 300)
        print(name, "2xx answers:", successes)
        assert successes >= MIN_SUCCESSES[name], answered[name]

    unexcused = [f for f in findings if not f.excused()]
    unique = sorted({str(f) for f in unexcused})
    print("\n".join(unique))   # all of them, in the captured output
    assert not unique, f"{len(unique)} findings:\n" + "\n".join(unique[:40]) + \
        "\n--- server log tail ---\n" + srv.log_text()[-3000:]
    # with the real ids, fuzzed orders got past the device and offer lookups and were placed
    assert answered["user-real-ids"][("POST /v1/orders", 201)] > 0, sorted(answered["user-real-ids"].items())
    # and the ledger is still whole after all that
    assert srv.ledger_check()["ok"]


def test_every_error_is_problem_details(server):
    """One shape for every 4xx/5xx the app sends: a service refusal, a
    malformed request, an unknown path, an unsupported method."""
    u = server.new_user(tokens=1000)
    answers = {
        "refusal": server.api("POST", "/v1/transfers", u, json={"to_username": "nobody", "to_full_name": "No One",
                                                                "tokens": 1, "pin": u.pin}),
        "malformed": server.api("POST", "/v1/transfers", u, json={"tokens": "many"}),
        "not json": server.api("POST", "/v1/transfers", u, data=b"\xff{", headers={"Content-Type": "application/json"}),
        "no session": server.api("GET", "/v1/me"),
        "admins only": server.api("GET", "/v1/admin/users", u),
        "unknown path": server.api("GET", "/v1/no-such-thing"),
        "method": server.api("PUT", "/v1/sessions/current", u),
    }
    statuses = {k: r.status_code for k, r in answers.items()}
    assert statuses == {"refusal": 404, "malformed": 422, "not json": 400,
                        "no session": 401, "admins only": 403, "unknown path": 404, "method": 405}, statuses
    for name, r in answers.items():
        assert r.headers["content-type"] == "application/problem+json", (name, r.headers)
        body = r.json()
        assert body["status"] == r.status_code and body["title"] and isinstance(body["detail"], str), (name, body)
        assert body["type"] == "about:blank" or body["type"].startswith("https://tokenrent.example/problems/"), body
    assert answers["malformed"].json()["type"] == "https://tokenrent.example/problems/invalid-request"
    assert answers["malformed"].json()["errors"][0]["loc"] == ["body", "to_username"]
    assert answers["no session"].headers["www-authenticate"] == "Bearer"
    # the 405 names every method of the path, not only the first route's
    assert set(answers["method"].headers["allow"].split(", ")) == {"GET", "DELETE"}


def test_the_document_declares_the_problems(server):
    spec = server.api("GET", "/openapi.json").json()
    components = spec["components"]["schemas"]
    assert "HTTPValidationError" not in components and "Problem" in components
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert set(resp["content"]) == {"application/problem+json"}, (method, path, status)
                    ref = resp["content"]["application/problem+json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[-1] in components, ref
            if op.get("security"):
                assert "401" in op["responses"], (method, path)
            if path.startswith("/v1/admin"):
                assert "403" in op["responses"], (method, path)
            if "422" in op["responses"]:
                assert op["responses"]["422"]["content"]["application/problem+json"]["schema"] == \
                    {"$ref": "#/components/schemas/ValidationProblem"}
    for path in ("/v1/sessions", "/v1/accounts", "/v1/transfers", "/v1/token-purchases"):
        limited = spec["paths"][path]["post"]["responses"]["429"]
        assert limited["headers"]["Retry-After"]["required"] is True, path


def test_openapi_operation_ids_are_unique(server):
    """Tools (schemathesis, client generators) key operations by operationId."""
    spec = server.api("GET", "/openapi.json").json()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert {"get", "head"} <= set(spec["paths"]["/v1/products/{product_id}/download"])
