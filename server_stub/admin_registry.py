"""The table of `tokenrent-server admin ...` commands, and the one way to add
one: a function taking (db, args), decorated with
@command("name", "help", arg("x", ...), ...), returning a JSON-able result.
The command modules (admin_cli, admin_store_cli) import this table; admin_cli
builds the parser from it. Nothing here imports a command module."""
from __future__ import annotations

from collections.abc import Callable

COMMANDS: dict[str, tuple[str, list[tuple[tuple, dict]], Callable]] = {}


def arg(*names, **kw):
    return (names, kw)


def command(name: str, help: str, *args):
    def deco(fn):
        if name in COMMANDS:
            raise RuntimeError(f"admin command {name!r} is registered twice")
        COMMANDS[name] = (help, list(args), fn)
        return fn
    return deco
