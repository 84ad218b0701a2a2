"""Desktop storefront tests (pytest-qt, real server, real agent)."""
