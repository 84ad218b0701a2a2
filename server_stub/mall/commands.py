"""The MSP operator's command table (`tokenrent-server msp admin ...`): the
command modules (admin_cli, settlement_cli) register on it; cli.py builds the
parser from it after importing them. Apart from the vendor's table
(admin_registry.VENDOR), so neither lists the other's commands."""
from __future__ import annotations

from ..admin_registry import CommandTable

MSP_COMMANDS = CommandTable()
command = MSP_COMMANDS.command
