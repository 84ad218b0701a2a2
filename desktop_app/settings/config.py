"""User settings: server address and where programs are installed.

Stored as JSON (small, human-readable, written atomically). An empty
server_url means "start the local demo server".
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from desktop_app.paths import AppPaths


@dataclass
class Settings:
    server_url: str = ""          # "" -> local demo server
    install_dir: str = ""         # "" -> AppPaths.default_install_dir
    agent_home: str = ""          # "" -> the license agent's own home (see resolved_agent_home)
    last_username: str = ""

    def resolved_install_dir(self, paths: AppPaths) -> Path:
        return Path(self.install_dir) if self.install_dir else paths.default_install_dir

    def resolved_agent_home(self, paths: AppPaths, *, demo: bool = False) -> Path:
        """The agent home the storefront installs codes into. By default the one
        `license-agent` itself uses (LICENSE_AGENT_HOME, else the platform's user data dir),
        so programs run through `license-agent run` outside the app see the same codes. The
        local demo store keeps its own home under the app's data dir."""
        if self.agent_home:
            return Path(self.agent_home)
        if demo and not os.environ.get("LICENSE_AGENT_HOME"):
            return paths.demo_agent_home
        from license_agent.paths import agent_home    # the agent's own rule, not a copy of it
        return agent_home()


class SettingsError(ValueError):
    pass


def validate_server_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url and not (url.startswith("http://") or url.startswith("https://")):
        raise SettingsError("The server address must start with http:// or https://")
    return url


def load_settings(paths: AppPaths) -> Settings:
    try:
        raw = json.loads(paths.settings_file.read_text("utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError):
        return Settings()  # a damaged settings file must not stop the app
    known = {k: str(v) for k, v in raw.items() if k in Settings.__dataclass_fields__}
    return Settings(**known)


def save_settings(paths: AppPaths, settings: Settings) -> None:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    tmp = paths.settings_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(settings), indent=2), "utf-8")
    os.replace(tmp, paths.settings_file)
