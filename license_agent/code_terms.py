"""The authorization-code format's vocabulary, without its cryptography: what a
license grants (the payload's `kind`) and the payload's `store_url` link.

Part of the code format (`codes.py` re-exports all of it); a module of its own so
that the storefront can import it at start-up without loading `cryptography`.
"""
from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["KINDS", "STORE_LINK_PREFIX", "LicenseKind", "product_of_store_link", "store_link"]


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
_STORE_LINK = re.compile(r"^tokenrent://product/([^/?#\s]+)/?$")


def store_link(product_id: object) -> str:
    return f"{STORE_LINK_PREFIX}{product_id}"


def product_of_store_link(link: str) -> str | None:
    """The product id in a tokenrent://product/ID link, or None when it is not one."""
    m = _STORE_LINK.match(link.strip())
    return m.group(1) if m else None
