"""Which CAs the storefront trusts for the server's certificate: the PEM bundle
named by TOKENRENT_CA_FILE (a vendor with its own CA, or a test CA), else the
system's (requests' default)."""
from __future__ import annotations

import os

CA_FILE_ENV = "TOKENRENT_CA_FILE"


def ca_verify() -> str | bool:
    """requests' `verify=` for each request: the CA bundle's path, or True for
    the system CAs. Per request, not on the Session: requests lets
    REQUESTS_CA_BUNDLE override a Session's `verify`, not a request's."""
    return os.environ.get(CA_FILE_ENV) or True
