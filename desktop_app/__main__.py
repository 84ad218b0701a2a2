"""`tokenrent`: the desktop storefront.

    tokenrent                          the store (a local demo store when no server is configured)
    tokenrent --server URL             use this store server
    tokenrent --product ID             open that product's page (where the agent's "buy more" leads)
    tokenrent tokenrent://product/ID   the same, as a link
"""
from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None):
    from desktop_app.app import Options
    from license_agent.code_terms import product_of_store_link
    parser = argparse.ArgumentParser(prog="tokenrent", description="TokenRent desktop storefront")
    parser.add_argument("--server", default="", help="store server address, e.g. https://store.example.com")
    parser.add_argument("--product", default=None, help="open this product's page")
    parser.add_argument("link", nargs="?", help="a tokenrent://product/ID link")
    args = parser.parse_args(argv)
    product = args.product
    if args.link:
        product = product_of_store_link(args.link)
        if product is None:
            parser.error(f"not a TokenRent link: {args.link!r} (expected tokenrent://product/ID)")
    if args.server and not args.server.startswith(("http://", "https://")):
        parser.error("--server must start with http:// or https://")
    return Options(server=args.server, product=product)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    from desktop_app.app import run
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
