"""The license agent's trust in the mall's members (docs/mall.md, "Trust on the user's machine").

When the mall is first shown, the MSP's key is pinned in the agent (`trust --mall`), read from
the MSP's public directory at the `msp_url` the home store names: trust on first use, over TLS
when the MSP's URL is https. Before the first order at another member, the agent is given that
member's MSP-signed directory entry (`trust ENTRY`), so it accepts the codes the member issues.
The agent checks the entry itself; the storefront only carries it. Blocking: worker threads."""
from __future__ import annotations

from typing import Any

from desktop_app.agent.bridge import AgentBridge, AgentError
from desktop_app.api.client import ApiClient, ApiError
from desktop_app.wire import Reply, ReplyError, parse

DIRECTORY_PATH = "/v1/mall/directory"


class MallPinned(Reply):
    """`trust --mall MSP_KEY --json`."""

    msp_key: str
    added: bool
    replaced: str | None


class MemberTrusted(Reply):
    """`trust ENTRY --json`."""

    member_id: str
    name: str
    directory_version: int
    kids: list[str]
    added: list[str]
    trusted_kids: list[str]


class Directory:
    """What the storefront needs of the MSP's directory: its key and the signed entries."""

    def __init__(self, body: Any):
        msp = body.get("msp") if isinstance(body, dict) else None
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(msp, dict) or not isinstance(msp.get("network_key"), str) or not isinstance(entries, dict) \
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in entries.items()):
            raise ReplyError(f"GET {DIRECTORY_PATH}", "no msp.network_key or entries")
        self.msp_key: str = msp["network_key"]
        self.entries: dict[str, str] = entries


class MallTrust:
    def __init__(self, agent: AgentBridge, timeout: float = 30.0):
        self.agent = agent
        self.timeout = timeout

    def directory(self, msp_url: str) -> Directory:
        """The MSP's directory; its failures are the agent's trust failing, not the home store
        being off-line (the caller's banner must not say so)."""
        try:
            return Directory(ApiClient(msp_url, timeout=self.timeout).request("GET", DIRECTORY_PATH, auth=False))
        except (ApiError, ReplyError) as exc:
            raise AgentError(f"the mall's directory at {msp_url} could not be read ({exc.user_message})") from None

    def pin_mall(self, msp_url: str) -> MallPinned:
        """Pins the MSP's key (nothing changes when it is already pinned). A different key
        already pinned is the agent's refusal (`mall_key_conflict`): said, never replaced here."""
        return self._typed(MallPinned, ["trust", "--mall", self.directory(msp_url).msp_key])

    def trust_member(self, msp_url: str, member_id: str) -> MemberTrusted:
        """The agent trusts `member_id`'s code keys on its MSP-signed entry (pinning the MSP key
        first when the mall was not shown yet)."""
        directory = self.directory(msp_url)
        entry = directory.entries.get(member_id)
        if entry is None:
            raise AgentError(f"The mall's directory has no entry for member {member_id}.")
        self._typed(MallPinned, ["trust", "--mall", directory.msp_key])
        return self._typed(MemberTrusted, ["trust", "-"], stdin=entry)

    def _typed(self, shape: type, args: list[str], stdin: str | None = None) -> Any:
        result = self.agent.call([*args, "--json"], stdin=stdin)
        try:
            return parse(shape, result.answer, f"license-agent {' '.join(args[:2])}")
        except ReplyError as exc:
            raise AgentError(exc.user_message) from exc
