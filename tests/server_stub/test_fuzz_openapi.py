"""Every operation in /openapi.json, driven by schemathesis-generated
requests (valid and invalid, with and without a session): no answer may be
a 5xx. Runs on a dedicated server per backend (admin calls change policy).

The fuzzed user has a registered device and a license, and the schema the
fuzzer reads offers the real ids (device, offers, tiers, licenses, products,
orders) beside the generic ones, so orders and quotes get past the device and
offer lookups into planning, holds, licenses and codes."""
import copy
import json

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings

from tests.support.store import order, register_device

EXAMPLES = 30  # per operation and mode (valid, then invalid requests)


def _with_real_values(spec: dict, real: dict[str, list]) -> dict:
    """The spec where every body property and parameter named in `real` is one
    of the real values (null stays allowed where it was). Used for one extra
    pass of valid requests; the generic passes use the published spec."""
    spec = copy.deepcopy(spec)

    def only(schema: dict, values: list) -> dict:
        branches = schema.get("anyOf", [])
        if any(b.get("type") == "null" for b in branches):
            return {"anyOf": [{"enum": values}, {"type": "null"}]}
        return {"enum": values}

    for comp in spec.get("components", {}).get("schemas", {}).values():
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


@pytest.mark.slow
def test_no_5xx_anywhere(server_factory):
    srv = server_factory(demo=True)
    user = srv.new_user(tokens=100_000)
    admin = srv.admin()
    keys = register_device(srv, user)
    products = srv.api("GET", "/v1/products").json()
    offers = [o for p in products for o in p["offers"]]
    by_kind = {o["kind"]: o for o in offers}
    convert = next(o for o in offers if o["kind"] == "convert"
                   and any(x["kind"] == "rent_uses" and x["product_id"] == o["product_id"] for x in offers))
    rental = next(o for o in offers if o["kind"] == "rent_uses" and o["product_id"] == convert["product_id"])
    # explicit cases: the whole order path works for this user and device before the fuzzing starts
    r = order(srv, user, keys, [{"offer_id": rental["id"], "quantity": rental["tiers"][0]["quantity"]}])
    assert r.status_code == 201, r.text
    license_id = r.json()["deliveries"][0]["license_id"]
    q = srv.api("POST", "/v1/quotes", user, json={"items": [{"offer_id": rental["id"],
                                                             "quantity": rental["tiers"][0]["quantity"]}],
                                                  "device_id": keys.device_id})
    assert q.status_code == 200 and q.json()["items"][0]["action"] == "extend", q.text
    r = order(srv, user, keys, [{"offer_id": rental["id"], "quantity": rental["tiers"][-1]["quantity"],
                                 "license_id": license_id}], installed=[rental["product_id"]])
    assert r.status_code == 201 and r.json()["items"][0]["action"] == "extend", r.text
    r = order(srv, user, keys, [{"offer_id": by_kind["rent_processings"]["id"],
                                 "quantity": by_kind["rent_processings"]["tiers"][0]["quantity"]}])
    assert r.status_code == 201, r.text
    proc_license = r.json()["deliveries"][0]["license_id"]
    order_id = r.json()["id"]
    real = {
        "device_id": [keys.device_id],
        "offer_id": sorted(o["id"] for o in offers),
        "quantity": sorted({t["quantity"] for o in offers for t in o.get("tiers", [])}),
        "license_id": [license_id, proc_license],
        "product_id": sorted(p["id"] for p in products),
        "order_id": [order_id],
    }
    published = srv.api("GET", "/openapi.json").json()
    generic = schemathesis.openapi.from_dict(published)
    with_ids = schemathesis.openapi.from_dict(_with_real_values(published, real))
    failures, ops, statuses, order_answers = [], 0, {}, []
    mismatches, conforming = [], [0]
    passes = [(r, GenerationMode.POSITIVE, "ids") for r in with_ids.get_all_operations()]
    passes += [(r, m, "generic") for r in generic.get_all_operations() for m in GenerationMode]
    for result, mode, kind in passes:
        op = result.ok()
        ops += 1
        who = admin if op.path.startswith("/v1/admin") else user

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case):
            # a valid session, so the fuzzer gets past auth (401s are tested elsewhere)
            resp = case.call(base_url=srv.base_url, headers={"Authorization": f"Bearer {who.token}"},
                             timeout=60)
            statuses[resp.status_code // 100] = statuses.get(resp.status_code // 100, 0) + 1
            if resp.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r} -> {resp.status_code} {resp.text[:200]}")
            elif 200 <= resp.status_code < 300:
                # every answer is what the published /openapi.json says (the response models);
                # checked against it, not against the copy with the real ids as enums
                published_op = generic[op.path][op.method.upper()]
                if published_op.is_valid_response(resp):
                    conforming[0] += 1
                else:
                    try:
                        published_op.validate_response(resp)
                    except Exception as e:  # noqa: BLE001 (the message says what does not match)
                        mismatches.append(f"{case.method} {case.formatted_path} -> {resp.status_code}: {str(e)[:600]}")
            if (op.method.upper(), op.path) == ("POST", "/v1/orders"):
                try:
                    detail = str(json.loads(resp.content).get("detail", ""))
                except (ValueError, AttributeError):
                    detail = ""
                order_answers.append((kind, resp.status_code, detail))
            if op.method.upper() == "DELETE" and op.path == "/v1/sessions/current":
                srv.sign_in(who)   # the fuzzer just signed us out

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE   # nothing to break (no parameters)
    assert ops >= 30
    assert statuses.get(2, 0) >= 100, statuses   # the fuzzer really got through
    assert not failures, "\n".join(failures[:20]) + "\n--- server log tail ---\n" + srv.log_text()[-4000:]
    assert not mismatches, "answers that do not match /openapi.json:\n" + "\n".join(mismatches[:20])
    assert conforming[0] >= 100, conforming
    # with the real ids, fuzzed orders got past the device lookup into planning, holds and codes
    real_orders = [(st, d) for k, st, d in order_answers if k == "ids"]
    placed = [a for a in real_orders if a[0] == 201]
    refused_later = [a for a in real_orders if a[0] in (402, 404, 409, 422) and "no such device" not in a[1]
                     and ("offer" in a[1] or "license" in a[1] or "quantity" in a[1] or "tier" in a[1]
                          or a[0] in (402, 409))]
    assert placed and refused_later, sorted(set(real_orders))[:40]
    assert not [a for a in real_orders if "no such device" in a[1]]
    # and the ledger is still whole after all that
    assert srv.ledger_check()["ok"]


def test_openapi_operation_ids_are_unique(server):
    """Tools (schemathesis, client generators) key operations by operationId."""
    spec = server.api("GET", "/openapi.json").json()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert {"get", "head"} <= set(spec["paths"]["/v1/products/{product_id}/download"])
