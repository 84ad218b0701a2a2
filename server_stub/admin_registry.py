"""Tables of operator commands, and the one way to add one: a function taking
(db, args), decorated with @command("name", "help", arg("x", ...), ...),
returning a JSON-able result (or a str, printed as it is).

`COMMANDS` / `command` are the vendor's table (`tokenrent-server admin ...`:
the command modules admin_cli, admin_store_cli import them; admin_cli builds
the parser from it). The MSP keeps its own table (server_stub/mall/admin_cli.py,
`tokenrent-server msp admin ...`), so neither lists the other's commands.
Both run the same way: one write transaction per command; a refusal (ApiError)
prints its problem details on stderr, exits 2 and changes nothing.
Nothing here imports a command module."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from sqlalchemy.orm import Session

from .services.errors import ApiError, Invalid, first_error

Arg = tuple[tuple[str, ...], dict[str, Any]]
Command = Callable[[Session, argparse.Namespace], Any]


def arg(*names: str, **kw: Any) -> Arg:
    return (names, kw)


class CommandTable:
    def __init__(self) -> None:
        self.commands: dict[str, tuple[str, list[Arg], Command]] = {}

    def command(self, name: str, help: str, *args: Arg) -> Callable[[Command], Command]:
        def deco(fn: Command) -> Command:
            if name in self.commands:
                raise RuntimeError(f"admin command {name!r} is registered twice")
            self.commands[name] = (help, list(args), fn)
            return fn
        return deco

    def add_parsers(self, parser: argparse.ArgumentParser, dest: str) -> None:
        """One sub-command of `parser` per command, its choice stored in `dest`."""
        # A command's argument with the dest of an option of `parser` (e.g. --network-key, the
        # server's own key file) would silently replace that option's value: refuse it here.
        taken = {action.dest for action in parser._actions}   # argparse has no public list
        cmds = parser.add_subparsers(dest=dest, required=True)
        for name, (help_text, args, _fn) in self.commands.items():
            cp = cmds.add_parser(name, help=help_text)
            for names, kw in args:
                action = cp.add_argument(*names, **kw)
                if action.dest in taken:
                    raise RuntimeError(f"command {name}: its argument {action.dest!r} would hide the option "
                                       f"of the same name")

    def run(self, name: str, a: argparse.Namespace,
            session: Callable[[], AbstractContextManager[Session]]) -> int:
        """Run command `name` in one write transaction (`session()`); prints the result on stdout."""
        _help, _args, fn = self.commands[name]
        try:
            with session() as db:
                result = fn(db, a)
        except ValidationError as e:   # a command's input checked by its schema
            print(json.dumps(Invalid(first_error(e)).body()), file=sys.stderr)
            return 2
        except ApiError as e:
            print(json.dumps(e.body()), file=sys.stderr)
            return 2
        print(result if isinstance(result, str) else json.dumps(jsonable_encoder(result), indent=2))
        return 0


VENDOR = CommandTable()
COMMANDS = VENDOR.commands
command = VENDOR.command

