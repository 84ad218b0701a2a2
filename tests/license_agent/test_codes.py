"""The authorization-code format: published vectors, round trips, and every refusal."""
import base64
import json
from datetime import datetime, timedelta, timezone, UTC
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from license_agent import codes

VECTORS = sorted((Path(__file__).parent / "vectors").glob("*.json"))


def _grant(device_public: bytes, **over) -> codes.Grant:
    fields = dict(license_id="L1", serial=1, product_id="4", device_id=codes.device_id_for(device_public),
                  kind="uses", issued_at=datetime(2026, 11, 23, 12, tzinfo=UTC),
                  store_url="tokenrent://product/4", uses=10, low_threshold=2, product_name="Editor")
    fields.update(over)
    return codes.Grant(**fields)


@pytest.fixture()
def keys():
    vendor = Ed25519PrivateKey.generate()
    device = X25519PrivateKey.generate()
    return vendor, device, {codes.kid_for(codes.raw_public_ed25519(vendor)): vendor.public_key()}


def test_there_are_vectors_for_every_kind():
    assert {json.loads(p.read_text())["payload"]["kind"] for p in VECTORS} == set(codes.KINDS)


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_is_reproduced_and_opens(path):
    vector = json.loads(path.read_text())
    vendor = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["vendor_ed25519_private_hex"]))
    device = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["device_x25519_private_hex"]))
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["ephemeral_x25519_private_hex"]))
    device_public = bytes.fromhex(vector["device_x25519_public_hex"])
    assert codes.raw_public_x25519(device) == device_public
    assert codes.kid_for(bytes.fromhex(vector["vendor_ed25519_public_hex"])) == vector["kid"]
    assert codes.device_id_for(device_public) == vector["device_id"]
    grant = codes.Grant.from_payload(vector["payload"])
    assert codes.issue_code(grant, vendor, device_public, ephemeral_key=ephemeral) == vector["code"]
    opened = codes.open_code(vector["code"], device, {vector["kid"]: vendor.public_key()})
    assert opened == grant
    assert opened.to_payload() == vector["payload"]
    header = codes.read_header(vector["code"])
    assert (header.version, header.kid, header.device_id) == ("TRC1", vector["kid"], vector["device_id"])


def test_ids_follow_design():
    raw = bytes(32)
    import hashlib
    assert codes.kid_for(raw) == hashlib.sha256(raw).hexdigest()[:16]
    assert codes.device_id_for(raw) == hashlib.sha256(raw).hexdigest()[:32]


@pytest.mark.parametrize("kind,extra", [
    ("permanent", {"uses": None, "low_threshold": None}),
    ("time", {"uses": None, "expires_at": datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=2)))}),
    ("uses", {}),
    ("processings", {"uses": None, "processings": 5000}),
])
def test_round_trip_every_kind(keys, kind, extra):
    vendor, device, trusted = keys
    device_public = codes.raw_public_x25519(device)
    grant = _grant(device_public, kind=kind, **extra)
    text = codes.issue_code(grant, vendor, device_public)
    assert text.startswith("TRC1.") and text.isascii()
    opened = codes.open_code(text, device, trusted)
    assert opened == grant
    assert opened.issued_at.tzinfo is not None


def test_codes_differ_every_time_but_digest_ignores_wrapping(keys):
    vendor, device, trusted = keys
    device_public = codes.raw_public_x25519(device)
    grant = _grant(device_public)
    first, second = (codes.issue_code(grant, vendor, device_public) for _ in range(2))
    assert first != second
    wrapped = "\n  ".join(first[i:i + 40] for i in range(0, len(first), 40)).lower() + "\r\n"
    assert codes.code_digest(wrapped) == codes.code_digest(first) != codes.code_digest(second)
    assert codes.open_code(wrapped, device, trusted) == grant
    dashed = "-".join(first[i:i + 5] for i in range(0, len(first), 5))
    assert codes.open_code(dashed, device, trusted) == grant


def test_untrusted_signer(keys):
    vendor, device, _ = keys
    device_public = codes.raw_public_x25519(device)
    text = codes.issue_code(_grant(device_public), vendor, device_public)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(codes.UntrustedSigner, match="not trusted"):
        codes.open_code(text, device, {codes.kid_for(codes.raw_public_ed25519(other)): other.public_key()})
    # a key filed under the wrong kid is not accepted either
    with pytest.raises(codes.UntrustedSigner):
        codes.open_code(text, device, {codes.read_header(text).kid: other.public_key()})


def test_key_rotation_several_trusted_keys(keys):
    vendor, device, trusted = keys
    new_vendor = Ed25519PrivateKey.generate()
    trusted = dict(trusted)
    trusted[codes.kid_for(codes.raw_public_ed25519(new_vendor))] = new_vendor.public_key()
    device_public = codes.raw_public_x25519(device)
    for signer in (vendor, new_vendor):
        assert codes.open_code(codes.issue_code(_grant(device_public), signer, device_public),
                               device, trusted).serial == 1


def _rebuild(text: str, mutate) -> str:
    """Changes the binary of a code and re-computes the text form's typo check, so only the
    signature can catch the change (what an attacker who knows the format would do)."""
    body = text.split(".", 1)[1]
    raw = bytearray(base64.b32decode(body + "=" * (-len(body) % 8))[:-4])
    mutate(raw)
    return codes._to_text(bytes(raw))


@pytest.mark.parametrize("where", ["kid", "device", "ephemeral", "ciphertext", "signature"])
def test_flipped_byte_is_refused_before_decryption(keys, where):
    vendor, device, trusted = keys
    device_public = codes.raw_public_x25519(device)
    text = codes.issue_code(_grant(device_public), vendor, device_public)
    index = {"kid": 3, "device": 12, "ephemeral": 40, "ciphertext": 80, "signature": -5}[where]

    def flip(raw):
        raw[index] ^= 0x01
    tampered = _rebuild(text, flip)
    expected = {"kid": codes.UntrustedSigner}.get(where, codes.BadSignature)
    with pytest.raises(expected):
        codes.open_code(tampered, device, trusted)


def test_mistyped_text_is_malformed_not_untrusted(keys):
    vendor, device, trusted = keys
    device_public = codes.raw_public_x25519(device)
    text = codes.issue_code(_grant(device_public), vendor, device_public)
    position = 20
    typo = text[:position] + ("A" if text[position] != "A" else "B") + text[position + 1:]
    with pytest.raises(codes.MalformedCode, match="mistyped"):
        codes.open_code(typo, device, trusted)
    with pytest.raises(codes.MalformedCode):
        codes.open_code(text[:60], device, trusted)


def test_wrong_device_has_a_clear_message(keys):
    vendor, device, trusted = keys
    other = X25519PrivateKey.generate()
    other_public = codes.raw_public_x25519(other)
    text = codes.issue_code(_grant(other_public), vendor, other_public)
    with pytest.raises(codes.WrongDevice) as err:
        codes.open_code(text, device, trusted)
    assert codes.device_id_for(other_public) in str(err.value)
    assert codes.device_id_for(codes.raw_public_x25519(device)) in str(err.value)


@pytest.mark.parametrize("text,error", [
    ("", codes.MalformedCode), ("   \n", codes.MalformedCode), ("hello", codes.MalformedCode),
    ("TRC1.", codes.MalformedCode), ("TRC1.!!!!", codes.MalformedCode), ("TRC2.AAAA", codes.UnsupportedVersion),
    ("XYZ1.AAAA", codes.MalformedCode), (b"TRC1.AAAA", codes.MalformedCode), ("TRC1." + "A" * 70000, codes.MalformedCode),
])
def test_garbage_text(keys, text, error):
    _, device, trusted = keys
    with pytest.raises(error) as err:
        codes.open_code(text, device, trusted)
    assert "\n" not in str(err.value) and str(err.value)


def test_unsupported_binary_version(keys):
    vendor, device, trusted = keys
    device_public = codes.raw_public_x25519(device)
    text = codes.issue_code(_grant(device_public), vendor, device_public)

    def bump(raw):
        raw[0] = 2
    with pytest.raises(codes.UnsupportedVersion):
        codes.read_header(_rebuild(text, bump))


@pytest.mark.parametrize("over", [
    {"kind": "rent"}, {"serial": 0}, {"serial": True}, {"uses": None}, {"uses": -1},
    {"expires_at": datetime(2027, 1, 1, tzinfo=UTC)}, {"device_id": "XYZ"},
    {"issued_at": datetime(2026, 1, 1)}, {"license_id": ""}, {"low_threshold": -2},
])
def test_invalid_grants_are_refused_at_construction(keys, over):
    _, device, _ = keys
    with pytest.raises(ValueError):
        _grant(codes.raw_public_x25519(device), **over)


def test_issue_refuses_mismatched_device(keys):
    vendor, device, _ = keys
    grant = _grant(codes.raw_public_x25519(device))
    with pytest.raises(ValueError, match="does not belong"):
        codes.issue_code(grant, vendor, codes.raw_public_x25519(X25519PrivateKey.generate()))
    with pytest.raises(ValueError):
        codes.issue_code(grant, vendor, b"short")


def test_payload_ignores_unknown_fields_and_rejects_missing():
    payload = dict(json.loads(VECTORS[0].read_text())["payload"], future_field=1)
    assert codes.Grant.from_payload(payload).license_id
    del payload["serial"]
    with pytest.raises(codes.MalformedCode):
        codes.Grant.from_payload(payload)
