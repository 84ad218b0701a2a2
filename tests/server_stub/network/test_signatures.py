"""RFC 9421 signatures of the mall network (server_stub/network/signatures.py):
the RFC's own Ed25519 vector and RFC 9530's digests go through our paths
(we interoperate), and every tampering is refused with its reason."""
from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from http_message_signatures import HTTPMessageSigner, algorithms

from server_stub.network import signatures
from server_stub.network.signatures import (
    MAX_SKEW_SECONDS,
    Refusal,
    SignatureRefused,
    check_content_digest,
    content_digest,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)

# ------------------------------------------------------------------ RFC 9421 Appendix B

# B.1.4 "Example Ed25519 Test Key", key id test-key-ed25519
RFC_ED25519_PRIVATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_ED25519_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
# B.2 "test-request"
RFC_URL = "https://example.com/foo?param=Value&Pet=dog"
RFC_BODY = b'{"hello": "world"}'
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    "Content-Length": "18",
}
# B.2.6 "Signing a Request Using ed25519"
RFC_B26_COMPONENTS = ("date", "@method", "@path", "@authority", "content-type", "content-length")
RFC_B26_CREATED = 1618884473
RFC_B26_SIGNATURE_INPUT = ('sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
                           ';created=1618884473;keyid="test-key-ed25519"')
RFC_B26_SIGNATURE = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"

# RFC 9530 Appendix D.1: the content {"hello": "world"} and its sha-256 Content-Digest
RFC9530_SHA256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


def _rfc_public_key():
    return load_pem_public_key(RFC_ED25519_PUBLIC_PEM)


def test_rfc9421_b26_verifies_through_our_verifier():
    """The RFC's signature, checked by our verification path (our clock rule
    with `now` = its created time, our key lookup, the library's base)."""
    headers = {**RFC_HEADERS, "Signature-Input": RFC_B26_SIGNATURE_INPUT, "Signature": RFC_B26_SIGNATURE}
    message = signatures._Request("POST", RFC_URL, signatures._Fields(headers))
    at = datetime.fromtimestamp(RFC_B26_CREATED, UTC)
    keys = {"test-key-ed25519": _rfc_public_key()}
    result = signatures._verified_signature(message, keys.get, RFC_B26_COMPONENTS, at)
    assert result.parameters["keyid"] == "test-key-ed25519"
    assert result.covered_components['"@authority"'] == "example.com"
    # the same signature with one byte changed is refused
    flipped = base64.b64encode(bytes([base64.b64decode(RFC_B26_SIGNATURE[9:-1])[0] ^ 1])
                               + base64.b64decode(RFC_B26_SIGNATURE[9:-1])[1:]).decode()
    bad = {**headers, "Signature": f"sig-b26=:{flipped}:"}
    with pytest.raises(SignatureRefused) as e:
        signatures._verified_signature(signatures._Request("POST", RFC_URL, signatures._Fields(bad)), keys.get,
                                       RFC_B26_COMPONENTS, at)
    assert e.value.reason == Refusal.BAD_SIGNATURE
    # and the RFC's 2021 signature is far outside our clock window today
    with pytest.raises(SignatureRefused) as e:
        signatures._verified_signature(message, keys.get, RFC_B26_COMPONENTS, None)
    assert e.value.reason == Refusal.CLOCK_SKEW


def test_rfc9421_b26_is_reproduced_by_the_library_configured_as_ours():
    """Ed25519 is deterministic: the signer we use (the library's, with the
    ED25519 algorithm and our single-key resolver) writes the RFC's bytes."""
    key = load_pem_private_key(RFC_ED25519_PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert key.public_key() == _rfc_public_key()
    message = signatures._Request("POST", RFC_URL, dict(RFC_HEADERS))
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                               key_resolver=signatures._OneKey("test-key-ed25519", key))
    signer.sign(message, key_id="test-key-ed25519", created=datetime.fromtimestamp(RFC_B26_CREATED, UTC),
                label="sig-b26", include_alg=False, covered_component_ids=RFC_B26_COMPONENTS,
                use_existing_digest=True)   # the RFC message carries its digest, not covered by B.2.6
    assert message.headers["Signature-Input"] == RFC_B26_SIGNATURE_INPUT
    assert message.headers["Signature"] == RFC_B26_SIGNATURE


def test_rfc9530_content_digests():
    assert content_digest(RFC_BODY) == RFC9530_SHA256
    check_content_digest(RFC9530_SHA256, RFC_BODY)
    check_content_digest(RFC_HEADERS["Content-Digest"], RFC_BODY)   # RFC 9421's sha-512 of the same content
    for value in (RFC9530_SHA256, RFC_HEADERS["Content-Digest"]):
        with pytest.raises(SignatureRefused) as e:
            check_content_digest(value, RFC_BODY + b" ")
        assert e.value.reason == Refusal.DIGEST_MISMATCH


def test_an_empty_body_has_a_digest_too():
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


# ------------------------------------------------------------------ our requests and answers

URL = "https://vendor-b.example:8443/v1/mall/exchanges/issue?x=1"
BODY = b'{"tokens":200,"user":"u-1"}'
IDEM = "5b0c2f0e-9a7d-4d1b-8e1e-6f3f6f0b1d7a"


@pytest.fixture(scope="module")
def keys():
    return {"m-aaaaaaaaaa": Ed25519PrivateKey.generate(), "msp": Ed25519PrivateKey.generate()}


@pytest.fixture(scope="module")
def resolve(keys):
    public = {kid: k.public_key() for kid, k in keys.items()}
    return public.get


def _signed_request(keys, method="POST", url=URL, body=BODY, idempotency_key: str | None = IDEM, now=None):
    headers = {"Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    headers.update(sign_request(method, url, headers, body, "m-aaaaaaaaaa", keys["m-aaaaaaaaaa"], now=now))
    return headers


def _refusal(call) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as e:
        call()
    assert str(e.value)   # a message for people
    return e.value


def test_a_signed_request_verifies_and_names_its_signer(keys, resolve):
    headers = _signed_request(keys)
    assert set(headers) >= {"Content-Digest", "Signature-Input", "Signature"}
    assert headers["Signature-Input"].startswith(
        'mall=("@method" "@target-uri" "content-digest" "idempotency-key");created=')
    assert 'keyid="m-aaaaaaaaaa"' in headers["Signature-Input"] and 'alg="ed25519"' in headers["Signature-Input"]
    assert "nonce=" in headers["Signature-Input"]
    assert headers["Content-Digest"] == content_digest(BODY)
    assert verify_request("POST", URL, headers, BODY, resolve) == "m-aaaaaaaaaa"


def test_two_signatures_of_one_request_carry_different_nonces(keys):
    first, second = _signed_request(keys), _signed_request(keys)
    nonce = [h["Signature-Input"].split('nonce="')[1].split('"')[0] for h in (first, second)]
    assert nonce[0] != nonce[1]


def test_without_idempotency_key_and_with_an_empty_body(keys, resolve):
    headers = _signed_request(keys, method="GET", body=b"", idempotency_key=None)
    assert "idempotency-key" not in headers["Signature-Input"]
    assert headers["Content-Digest"] == content_digest(b"")
    assert verify_request("GET", URL, headers, b"", resolve) == "m-aaaaaaaaaa"
    # a body slipped into a request signed as empty is refused
    assert _refusal(lambda: verify_request("GET", URL, headers, b"{}", resolve)).reason == Refusal.DIGEST_MISMATCH


@pytest.mark.parametrize("tamper", ["method", "url_path", "url_query", "url_host", "url_scheme", "body", "digest",
                                    "idempotency_key", "idempotency_key_dropped", "idempotency_key_added",
                                    "signature", "keyid"])
def test_tampering_is_refused(keys, resolve, tamper):
    headers = _signed_request(keys, idempotency_key=None if tamper == "idempotency_key_added" else IDEM)
    method, url, body = "POST", URL, BODY
    expected = Refusal.BAD_SIGNATURE
    if tamper == "method":
        method = "PUT"
    elif tamper == "url_path":
        url = URL.replace("/issue", "/revoke")
    elif tamper == "url_query":
        url = URL.replace("x=1", "x=2")
    elif tamper == "url_host":
        url = URL.replace("vendor-b", "vendor-c")
    elif tamper == "url_scheme":
        url = URL.replace("https://", "http://")
    elif tamper == "body":
        body, expected = BODY.replace(b"200", b"900"), Refusal.DIGEST_MISMATCH
    elif tamper == "digest":   # body and digest both replaced: the signature covers the digest
        body = BODY.replace(b"200", b"900")
        headers["Content-Digest"] = content_digest(body)
    elif tamper == "idempotency_key":
        headers["Idempotency-Key"] = IDEM.replace("5b0c", "0000")
    elif tamper == "idempotency_key_dropped":
        del headers["Idempotency-Key"]
    elif tamper == "idempotency_key_added":
        headers["Idempotency-Key"] = IDEM
    elif tamper == "signature":
        headers["Signature"] = _signed_request(keys, body=b"other")["Signature"]
    elif tamper == "keyid":   # claims to be the MSP
        headers["Signature-Input"] = headers["Signature-Input"].replace('keyid="m-aaaaaaaaaa"', 'keyid="msp"')
    assert _refusal(lambda: verify_request(method, url, headers, body, resolve)).reason == expected


def test_an_unknown_key_is_refused(keys, resolve):
    headers = _signed_request(keys)
    stranger = Ed25519PrivateKey.generate()
    headers.update(sign_request("POST", URL, {"Idempotency-Key": IDEM}, BODY, "m-zzzzzzzzzz", stranger))
    refused = _refusal(lambda: verify_request("POST", URL, headers, BODY, resolve))
    assert refused.reason == Refusal.UNKNOWN_KEY and "m-zzzzzzzzzz" in str(refused)


def test_a_missing_signature_is_refused(resolve):
    headers = {"Content-Type": "application/json", "Content-Digest": content_digest(BODY)}
    assert _refusal(lambda: verify_request("POST", URL, headers, BODY, resolve)).reason == Refusal.MISSING_SIGNATURE


@pytest.mark.parametrize("minutes", [6, -6])
def test_created_six_minutes_off_is_refused_both_ways(keys, resolve, minutes):
    now = datetime.now(UTC).replace(microsecond=0)   # `created` is whole seconds
    headers = _signed_request(keys, now=now + timedelta(minutes=minutes))
    refused = _refusal(lambda: verify_request("POST", URL, headers, BODY, resolve, now=now))
    assert refused.reason == Refusal.CLOCK_SKEW and "360 s" in str(refused)


@pytest.mark.parametrize("seconds", [MAX_SKEW_SECONDS - 5, -(MAX_SKEW_SECONDS - 5)])
def test_created_within_the_window_is_accepted(keys, resolve, seconds):
    now = datetime.now(UTC)
    headers = _signed_request(keys, now=now + timedelta(seconds=seconds))
    assert verify_request("POST", URL, headers, BODY, resolve, now=now) == "m-aaaaaaaaaa"


def test_a_resolver_failure_is_not_a_bad_signature(keys):
    def broken(_kid):
        raise RuntimeError("directory database down")

    with pytest.raises(RuntimeError, match="database down"):
        verify_request("POST", URL, _signed_request(keys), BODY, broken)


# ------------------------------------------------------------------ answers

ANSWER = b'{"status":"issued","tokens":200}'


def _signed_answer(keys, request_headers, status=201, body=ANSWER, now=None):
    headers = {"Content-Type": "application/json"}
    headers.update(sign_response(status, headers, body, request_headers, "msp", keys["msp"], now=now))
    return headers


def test_an_answer_verifies_against_its_request(keys, resolve):
    request = _signed_request(keys)
    answer = _signed_answer(keys, request)
    assert answer["Signature-Input"].startswith('mall=("@status" "content-digest" "signature";req;key="mall")')
    assert verify_response(201, answer, ANSWER, request, resolve) == "msp"


def test_an_answer_moved_to_another_request_is_refused(keys, resolve):
    first, second = _signed_request(keys), _signed_request(keys)   # same request, signed twice: other nonces
    answer = _signed_answer(keys, first)
    assert _refusal(lambda: verify_response(201, answer, ANSWER, second, resolve)).reason == Refusal.BAD_SIGNATURE
    other = _signed_request(keys, idempotency_key="another-operation")
    assert _refusal(lambda: verify_response(201, answer, ANSWER, other, resolve)).reason == Refusal.BAD_SIGNATURE


@pytest.mark.parametrize("tamper", ["status", "body", "unsigned", "stale", "unknown_key"])
def test_a_tampered_answer_is_refused(keys, resolve, tamper):
    request = _signed_request(keys)
    now = datetime.now(UTC)
    answer = _signed_answer(keys, request, now=now - timedelta(minutes=6) if tamper == "stale" else None)
    status, body = 201, ANSWER
    expected = {"status": Refusal.BAD_SIGNATURE, "body": Refusal.DIGEST_MISMATCH, "unsigned": Refusal.MISSING_SIGNATURE,
                "stale": Refusal.CLOCK_SKEW, "unknown_key": Refusal.UNKNOWN_KEY}[tamper]
    if tamper == "status":
        status = 200
    elif tamper == "body":
        body = ANSWER.replace(b"200", b"2000")
    elif tamper == "unsigned":
        answer = {"Content-Type": "application/json"}
    lookup = (lambda _kid: None) if tamper == "unknown_key" else resolve
    assert _refusal(lambda: verify_response(status, answer, body, request, lookup, now=now)).reason == expected


def test_an_answer_to_an_unsigned_request_cannot_be_bound(keys):
    with pytest.raises(ValueError, match="no signature"):
        sign_response(401, {}, b"{}", {"Content-Type": "application/json"}, "msp", keys["msp"])


def test_a_naive_now_is_a_programming_error(keys):
    with pytest.raises(ValueError, match="aware"):
        sign_request("GET", URL, {}, b"", "m-aaaaaaaaaa", keys["m-aaaaaaaaaa"], now=datetime.now())


# ------------------------------------------------------------------ the key id, read before the check

def test_the_key_id_is_read_from_the_one_signature(keys):
    assert signatures.signing_key_id(_signed_request(keys)) == "m-aaaaaaaaaa"


@pytest.mark.parametrize("signature_input, reason", [
    (None, Refusal.MISSING_SIGNATURE),
    ('mall=("@method";created=1', Refusal.BAD_SIGNATURE),                        # not a dictionary
    ('mall=("@method");created=1', Refusal.BAD_SIGNATURE),                       # no key id
    ('mall=("@method");keyid=7', Refusal.BAD_SIGNATURE),                         # not a string
    ('a=("@method");keyid="m-aaaaaaaaaa", b=("@method");keyid="m-bbbbbbbbbb"', Refusal.BAD_SIGNATURE),   # two
])
def test_a_key_id_that_cannot_be_read_is_refused(keys, signature_input, reason):
    headers = _signed_request(keys)
    if signature_input is None:
        del headers["Signature-Input"]
    else:
        headers["Signature-Input"] = signature_input
    with pytest.raises(SignatureRefused) as refused:
        signatures.signing_key_id(headers)
    assert refused.value.reason == reason
