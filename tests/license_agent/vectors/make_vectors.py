"""Regenerates tests/license_agent/vectors/*.json (run by hand only when the format changes on purpose).

Every key is fixed, including the ephemeral X25519 key, so the codes are reproducible:
Ed25519 signatures are deterministic and the AES-GCM key and nonce come from HKDF.
"""
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from license_agent import codes

HERE = Path(__file__).parent
VENDOR_SEED = bytes(range(1, 33))
DEVICE_SEED = bytes(range(33, 65))
EPHEMERAL_SEED = bytes(range(65, 97))

CASES = {
    "permanent": dict(kind="permanent"),
    "time": dict(kind="time", expires_at="2026-12-31T23:59:59Z", low_threshold=86400),
    "uses": dict(kind="uses", uses=100, low_threshold=10),
    "processings": dict(kind="processings", processings=1000),
}


def build(name: str, spec: dict) -> dict:
    vendor = Ed25519PrivateKey.from_private_bytes(VENDOR_SEED)
    device = X25519PrivateKey.from_private_bytes(DEVICE_SEED)
    ephemeral = X25519PrivateKey.from_private_bytes(EPHEMERAL_SEED)
    device_public = codes.raw_public_x25519(device)
    payload = dict(license_id=f"lic-{name}", serial=3, product_id="4",
                   device_id=codes.device_id_for(device_public), issued_at="2026-11-23T12:00:00Z",
                   store_url="tokenrent://product/4", product_name="Example Editor", **spec)
    grant = codes.Grant.from_payload(payload)
    return {
        "description": f"{name} grant; all keys fixed, text form as issue_code returns it",
        "vendor_ed25519_private_hex": VENDOR_SEED.hex(),
        "vendor_ed25519_public_hex": codes.raw_public_ed25519(vendor).hex(),
        "kid": codes.kid_for(codes.raw_public_ed25519(vendor)),
        "device_x25519_private_hex": DEVICE_SEED.hex(),
        "device_x25519_public_hex": device_public.hex(),
        "device_id": codes.device_id_for(device_public),
        "ephemeral_x25519_private_hex": EPHEMERAL_SEED.hex(),
        "payload": grant.to_payload(),
        "code": codes.issue_code(grant, vendor, device_public, ephemeral_key=ephemeral),
    }


if __name__ == "__main__":
    for name, spec in CASES.items():
        (HERE / f"{name}.json").write_text(json.dumps(build(name, spec), indent=2, sort_keys=True) + "\n")
    print("wrote", ", ".join(CASES), file=sys.stderr)
