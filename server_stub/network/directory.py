"""The MSP's directory as members read it (GET /v1/mall/directory, docs/mall.md):
who is in the mall, their keys, their token and its cash value, their status,
and whose tokens each accepts (claim 11)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MSP_ID = "msp"
ACTIVE = "active"


class DirectoryError(ValueError):
    """The directory document is not what the MSP publishes."""


@dataclass(frozen=True)
class MemberEntry:
    member_id: str
    name: str
    base_url: str
    network_key: str
    token_name: str
    token_value_cents: int
    status: str
    parent: str | None
    groups: tuple[str, ...]
    accepts: str | tuple[str, ...]      # "all", or the member ids whose tokens it accepts

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def accepts_tokens_of(self, member_id: str) -> bool:
        return self.accepts == "all" or member_id in self.accepts

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> MemberEntry:
        try:
            token = raw["token"]
            accepts = raw.get("accepts", "all")
            if isinstance(accepts, Mapping):      # the MSP's form: {"mode": "all" | "listed", "members": [...]}
                accepts = "all" if accepts.get("mode") == "all" else list(accepts.get("members") or ())
            entry = cls(
                member_id=str(raw["member_id"]), name=str(raw["name"]), base_url=str(raw["base_url"]).rstrip("/"),
                network_key=str(raw["network_key"]), token_name=str(token["name"]),
                token_value_cents=int(token["value_cents"]), status=str(raw["status"]),
                parent=raw.get("parent"), groups=tuple(raw.get("groups") or ()),
                accepts="all" if accepts == "all" else tuple(accepts))
        except (KeyError, TypeError, ValueError) as e:
            raise DirectoryError(f"bad member entry: {e}") from None
        if entry.token_value_cents < 1:
            raise DirectoryError(f"member {entry.member_id}: token value must be at least 1 cent")
        return entry


@dataclass(frozen=True)
class Directory:
    version: int
    msp_key: str
    members: Mapping[str, MemberEntry]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Directory:
        try:
            version = int(raw["version"])
            msp_key = str(raw["msp"]["network_key"])
            members = {e.member_id: e for e in map(MemberEntry.parse, raw["members"])}
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, DirectoryError):
                raise
            raise DirectoryError(f"bad directory: {e}") from None
        return cls(version, msp_key, members)

    def member(self, member_id: str) -> MemberEntry | None:
        return self.members.get(member_id)
