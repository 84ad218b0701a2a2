"""The typed replies (desktop_app/api/replies.py, desktop_app/agent/replies.py) are the
contract: every reply captured from the live server and agent parses, with no field the
shape does not know and none missing; the shapes agree with the server's /openapi.json
(field names and required-ness of the reply schemas); the storefront's offer kinds are the
API's; and a reply that breaks the contract is refused with a clear error."""
from __future__ import annotations

import typing
from datetime import datetime

import pytest

from desktop_app.agent import replies as agent_replies
from desktop_app.api import replies as r
from desktop_app.wire import Reply, ReplyError, dump, field_names, parse


def _reply_type(shape):
    """The Reply class inside ``shape`` (``X``, ``X | None``, ``list[X]``), or None."""
    if isinstance(shape, type) and issubclass(shape, Reply):
        return shape
    for arg in typing.get_args(shape):
        found = _reply_type(arg)
        if found is not None:
            return found
    return None


# RFC 9457's `status` repeats the HTTP status; the storefront reads the status line instead
# (and servers before problem details used `status` for the declined purchase's status).
UNREAD_PROBLEM_MEMBERS = {"status"}


def unknown_fields(shape, data, where: str = "") -> list[str]:
    """Keys in ``data`` that ``shape`` does not name, at any depth."""
    shape = _reply_type(shape) if not (isinstance(shape, type) and issubclass(shape, Reply)) else shape
    if isinstance(data, list):
        return [u for i, item in enumerate(data) for u in unknown_fields(shape, item, f"{where}[{i}]")]
    if shape is None or not isinstance(data, dict):
        return []
    hints = typing.get_type_hints(shape)
    unread = UNREAD_PROBLEM_MEMBERS if issubclass(shape, r.Problem) else set()
    out = [f"{where}.{k}" for k in data if k not in shape.__fields__ and k not in unread]
    for name in shape.__fields__:
        if name in data:
            out += unknown_fields(hints[name], data[name], f"{where}.{name}")
    return out


def test_every_captured_reply_parses_with_nothing_unknown_or_missing(captured):
    problems = []
    for name, (shape, data) in captured.items():
        try:
            parse(shape, data, name)          # required fields missing or mistyped: ReplyError
        except ReplyError as exc:
            problems.append(str(exc))
        problems += [f"{name}: {u} is not in the reply shape" for u in unknown_fields(shape, data, name)]
    assert problems == []
    # what the capture covers (a shape left out here would not be checked at all)
    covered, todo = set(), [_reply_type(shape) for shape, _ in captured.values()]
    while todo:
        shape = todo.pop()
        if shape is not None and shape not in covered:
            covered.add(shape)
            todo += [_reply_type(h) for h in typing.get_type_hints(shape).values()]
    shapes = {getattr(m, n) for m in (r, agent_replies) for n in dir(m)
              if isinstance(getattr(m, n), type) and issubclass(getattr(m, n), Reply)
              and not getattr(m, n).__subclasses__()}          # bases (Reply, Problem) are not replies
    assert shapes - covered - MALL_SHAPES - OPEN_SHAPES == set()


# The mall's replies need an MSP and other members, which the capture (one vendor, one agent)
# does not have. tests/desktop_app/test_mall.py parses them from live servers (required fields
# and types); the unknown-field check above does not run on them yet.
MALL_SHAPES = {r.MemberToken, r.MallMember, r.Mall, r.ExchangeQuote, r.Exchange, r.MallAssertion}
# Open tokens (issue 12) need the MSP too: tests/desktop_app/open/test_open_network.py checks them
# against live servers' answers and both servers' OpenAPI documents.
OPEN_SHAPES = {r.OpenLot, r.OpenGiftCertificate, r.OpenWallet, r.OpenActivityLine, r.Redeemed, r.IssuedLot,
               r.CertificateRef, r.OpenKindOffer, r.GiftCertificateTerms, r.OpenTokenOffers, r.SoldGiftCertificate,
               r.OpenTokenPurchase, r.PurchaseRecipient, r.PurchasedLot, r.GiftGiven, r.PlanPortion, r.OpenPlan,
               r.Split, r.PaidPart, r.OpenShort}


def test_the_captured_replies_say_what_the_storefront_shows(captured):
    """The scenario is what the model tests rely on; its figures are the server's and agent's."""
    quote = captured.parsed("POST /v1/quotes")
    assert (quote.required_tokens, quote.available_tokens, quote.payable, quote.shortage) == (195, 500, True, 0)
    short = captured.parsed("402 POST /v1/orders")
    assert (short.required_tokens, short.available_tokens, short.shortage) == (450, 305, 145)
    status = captured.parsed("agent status")
    d = next(lic for lic in status.licenses if lic.product_name == "Software D")
    assert (d.kind, d.remaining, d.total, d.low_threshold, d.warning) == ("processings", 40, 1000, 50, True)
    ledger = captured.parsed("GET /v1/ledger")
    assert ledger.entries[0].balance_after == ledger.available_tokens     # newest first


# ------------------------------------------------------------------ the OpenAPI document

REPLY_OPERATIONS = [      # (shape, method, path, status) of the 2xx replies the storefront reads
    (r.Account, "post", "/v1/accounts", "201"),
    (r.Session, "post", "/v1/sessions", "200"),
    (r.Me, "get", "/v1/me", "200"),
    (r.TokenOffers, "get", "/v1/token-offers", "200"),
    (r.TokenPurchase, "post", "/v1/token-purchases", "201"),
    (list[r.TokenPurchase], "get", "/v1/token-purchases", "200"),
    (r.Transfer, "post", "/v1/transfers", "201"),
    (r.Ledger, "get", "/v1/ledger", "200"),
    (list[r.Category], "get", "/v1/categories", "200"),
    (list[r.Product], "get", "/v1/products", "200"),
    (r.VendorKey, "get", "/v1/vendor-key", "200"),
    (r.Device, "post", "/v1/devices", "201"),
    (r.Quote, "post", "/v1/quotes", "200"),
    (r.Receipt, "post", "/v1/orders", "201"),
    (list[r.Receipt], "get", "/v1/orders", "200"),
    (r.OrderList, "get", "/v1/order-list", "200"),
    (r.OrderList, "put", "/v1/order-list", "200"),
    (list[r.License], "get", "/v1/licenses", "200"),
    (r.LicenseCode, "get", "/v1/licenses/{license_id}/code", "200"),
]
PROBLEM_OPERATIONS = [    # error bodies the storefront reads: its fields must be in the documented body
    (r.Shortage, "post", "/v1/orders", "402"),
]


@pytest.fixture(scope="module")
def openapi(store_server):
    reply = store_server.api("GET", "/openapi.json")
    assert reply.status_code == 200
    return reply.json()


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _object_schema(doc: dict, schema: dict) -> dict | None:
    """The object schema inside ``schema`` (through $ref, arrays and anyOf with null)."""
    schema = _resolve(doc, schema)
    if schema.get("type") == "array":
        return _object_schema(doc, schema["items"])
    for option in schema.get("anyOf", []):
        found = _object_schema(doc, option)
        if found is not None:
            return found
    return schema if "properties" in schema else None


def compare(doc: dict, shape, schema: dict, where: str, exact: bool) -> list[str]:
    """Field names and required-ness of ``shape`` against ``schema``, at every depth."""
    reply, schema = _reply_type(shape), _object_schema(doc, schema)
    if reply is None or schema is None:
        return [f"{where}: the document has no object schema here"] if reply is not None else []
    fields, required = field_names(reply)
    props, doc_required = set(schema["properties"]), set(schema.get("required", []))
    out = []
    if exact:
        out += [f"{where}.{f}: in the shape, not in the document" for f in sorted(fields - props)]
        out += [f"{where}.{f}: in the document, not in the shape" for f in sorted(props - fields)]
        out += [f"{where}.{f}: required in one, optional in the other" for f in sorted((required ^ doc_required) & props)]
    else:       # an error body: what the storefront needs is documented (and required)
        out += [f"{where}.{f}: not in the documented body" for f in sorted(required - props)]
        out += [f"{where}.{f}: required here, optional there" for f in sorted(required - doc_required)]
    hints = typing.get_type_hints(reply)
    for name in sorted(fields & props):
        if _reply_type(hints[name]) is not None:
            out += compare(doc, hints[name], schema["properties"][name], f"{where}.{name}", exact)
    return out


def _response_schema(doc, method, path, status) -> dict:
    operation = doc["paths"][path][method]
    assert status in operation["responses"], f"{method.upper()} {path} documents no {status}"
    content = operation["responses"][status]["content"]
    # application/json, or application/problem+json for error bodies (RFC 9457)
    (media,) = [m for m in content if m in ("application/json", "application/problem+json")][:1]
    return content[media]["schema"]


def test_reply_shapes_agree_with_the_openapi_document(openapi):
    problems = []
    for shape, method, path, status in REPLY_OPERATIONS:
        problems += compare(openapi, shape, _response_schema(openapi, method, path, status),
                            f"{status} {method.upper()} {path}", exact=True)
    for shape, method, path, status in PROBLEM_OPERATIONS:
        problems += compare(openapi, shape, _response_schema(openapi, method, path, status),
                            f"{status} {method.upper()} {path}", exact=False)
    assert problems == []
    # and the comparison does see a difference: a Session is not what GET /v1/me documents
    assert compare(openapi, r.Session, _response_schema(openapi, "get", "/v1/me", "200"), "me", exact=True)


def test_offer_kinds_are_the_apis(openapi):
    """The storefront spells the API's vocabulary itself (it never imports server_stub)."""
    product = _object_schema(openapi, _response_schema(openapi, "get", "/v1/products", "200"))
    offer = _object_schema(openapi, product["properties"]["offers"])
    kind = _resolve(openapi, offer["properties"]["kind"])
    assert kind["enum"] == [k.value for k in r.OfferKind]
    quote = _object_schema(openapi, _response_schema(openapi, "post", "/v1/quotes", "200"))
    item = _object_schema(openapi, quote["properties"]["items"])
    assert _resolve(openapi, item["properties"]["kind"])["enum"] == [k.value for k in r.OfferKind]


def test_license_kinds_are_the_code_formats():
    from license_agent.codes import LicenseKind
    assert r.LicenseKind is LicenseKind and agent_replies.LicenseKind is LicenseKind


# ------------------------------------------------------------------ refusals of a broken reply

def test_a_reply_that_breaks_the_contract_is_refused_clearly(captured):
    me = dict(captured.data("GET /v1/me"))
    del me["available_tokens"]
    with pytest.raises(ReplyError, match=r"Me\.available_tokens: missing"):
        parse(r.Me, me, "Me")
    me = dict(captured.data("GET /v1/me"), available_tokens="500")      # text is not a number
    with pytest.raises(ReplyError, match="expected int"):
        parse(r.Me, me, "Me")
    products = captured.data("GET /v1/products")
    odd = [dict(products[0], offers=[dict(products[0]["offers"][0], kind="rent_forever")])]
    with pytest.raises(ReplyError, match=r"\[0\]\.offers\[0\]\.kind: 'rent_forever' is not one of"):
        parse(list[r.Product], odd, "products")
    line = dict(captured.data("GET /v1/ledger")["entries"][0], at="yesterday")
    with pytest.raises(ReplyError, match="not an RFC 3339 time"):
        parse(r.LedgerLine, line)
    # a field a later server adds is ignored: an older storefront keeps working
    later = dict(captured.data("GET /v1/me"), loyalty_level=3)
    assert parse(r.Me, later) == captured.parsed("GET /v1/me")


def test_replies_are_immutable_and_round_trip(captured):
    status = captured.parsed("agent status")
    with pytest.raises(AttributeError):
        status.device_id = "x"
    again = parse(agent_replies.AgentStatus, dump(status))
    assert again == status and isinstance(again.clock.now, datetime)
    licenses = captured.parsed("GET /v1/licenses")
    assert parse(list[r.License], dump(licenses)) == licenses
