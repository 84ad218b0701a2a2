"""The authorization-code format's vocabulary, without its cryptography: what a
license grants (the payload's `kind`) and the payload's `store_url` link.

Part of the code format (`codes.py` re-exports all of it); a module of its own so
that the storefront can import it at start-up without loading `cryptography`.
"""
from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["HOME_ISSUER", "KINDS", "REF_SEPARATOR", "STORE_LINK_PREFIX", "LicenseKind", "product_of_store_link",
           "product_ref", "split_ref", "store_link"]


class LicenseKind(StrEnum):
    """What a license grants: the payload's `kind` (the server, agent and storefront use this)."""

    PERMANENT = "permanent"
    TIME = "time"
    USES = "uses"
    PROCESSINGS = "processings"


KINDS = tuple(k.value for k in LicenseKind)

# The payload's `store_url`: the way back to the store for one product. Built and parsed here
# only (the server puts it in codes, the agent prints it, the storefront opens it).
STORE_LINK_PREFIX = "tokenrent://product/"
_STORE_LINK = re.compile(r"^tokenrent://product/((?:[A-Za-z0-9._:\-]{1,64}/)?[^/?#\s]+)/?$")

# A product reference names a product of one issuer: `ISSUER/PRODUCT_ID` (the issuer is the mall
# member whose MSP-vouched key signed the license's codes, or HOME_ISSUER for keys pinned by
# hand), or a bare PRODUCT_ID. '/' is the separator because no product id may hold one (':' may).
REF_SEPARATOR = "/"
HOME_ISSUER = "home"


def product_ref(product_id: object, issuer: str | None = None) -> str:
    """`ISSUER/PRODUCT_ID`, or the bare id when no issuer is named."""
    return f"{issuer}{REF_SEPARATOR}{product_id}" if issuer else str(product_id)


def split_ref(ref: str) -> tuple[str | None, str]:
    """(issuer or None, product id) of a product reference; not validated here."""
    issuer, sep, product_id = ref.partition(REF_SEPARATOR)
    return (issuer, product_id) if sep else (None, ref)


def store_link(product_id: object, issuer: str | None = None) -> str:
    """tokenrent://product/ID, or tokenrent://product/MEMBER/ID for a product of a mall member."""
    return f"{STORE_LINK_PREFIX}{product_ref(product_id, issuer)}"


def product_of_store_link(link: str) -> str | None:
    """The product reference in a store link (`ID`, or `MEMBER/ID`), or None when it is not one."""
    m = _STORE_LINK.match(link.strip())
    return m.group(1) if m else None
