"""Property tests of the code format: any grant round-trips; any single changed bit in the
binary is refused (before decryption) even when the text's check digits are recomputed."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, UTC

import pytest
from hypothesis import given, settings, strategies as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from license_agent import codes

VENDOR = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
DEVICE = X25519PrivateKey.from_private_bytes(bytes(range(33, 65)))
DEVICE_PUBLIC = codes.raw_public_x25519(DEVICE)
TRUSTED = {codes.kid_for(codes.raw_public_ed25519(VENDOR)): VENDOR.public_key()}
BASE = datetime(2026, 1, 1, tzinfo=UTC)

text_field = st.text(min_size=1, max_size=40)
grants = st.builds(
    lambda license_id, serial, product_id, kind, count, days, threshold, name, url: codes.Grant(
        license_id=license_id, serial=serial, product_id=product_id, device_id=codes.device_id_for(DEVICE_PUBLIC),
        kind=kind, issued_at=BASE, store_url=url, product_name=name, low_threshold=threshold,
        expires_at=BASE + timedelta(days=days) if kind == "time" else None,
        uses=count if kind == "uses" else None, processings=count if kind == "processings" else None),
    text_field, st.integers(1, 2**40), text_field, st.sampled_from(codes.KINDS), st.integers(0, 2**40),
    st.integers(1, 3650), st.none() | st.integers(0, 10**6), st.text(max_size=60), text_field)


@settings(max_examples=60, deadline=None)
@given(grants)
def test_any_grant_round_trips(grant):
    assert codes.open_code(codes.issue_code(grant, VENDOR, DEVICE_PUBLIC), DEVICE, TRUSTED) == grant


SAMPLE = codes.issue_code(codes.Grant(license_id="L", serial=1, product_id="4",
                                      device_id=codes.device_id_for(DEVICE_PUBLIC), kind="uses", issued_at=BASE,
                                      store_url="tokenrent://product/4", uses=5), VENDOR, DEVICE_PUBLIC)
_BODY = SAMPLE.split(".", 1)[1]
SAMPLE_BINARY = base64.b32decode(_BODY + "=" * (-len(_BODY) % 8))[:-4]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SAMPLE_BINARY) * 8 - 1))
def test_any_flipped_bit_is_refused(bit):
    raw = bytearray(SAMPLE_BINARY)
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(codes.CodeError) as err:
        codes.open_code(codes._to_text(bytes(raw)), DEVICE, TRUSTED)
    assert not isinstance(err.value, codes.DecryptionFailed), "a change must be caught by the signature first"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_code_error_never_a_crash(text):
    with pytest.raises(codes.CodeError):
        codes.open_code(text, DEVICE, TRUSTED)
