"""Where the app keeps its files. One place, so tests can point it elsewhere.

TOKENRENT_HOME (if set) holds everything: config, data, cache. Otherwise the
platform's user dirs (platformdirs) are used.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "tokenrent"


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def demo_db(self) -> Path:
        return self.data_dir / "demo.sqlite3"

    @property
    def demo_agent_home(self) -> Path:
        """The local demo store's own agent home (its codes are for the demo server only)."""
        return self.data_dir / "agent"

    @property
    def default_install_dir(self) -> Path:
        return self.data_dir / "programs"

    @property
    def downloads_dir(self) -> Path:
        return self.cache_dir / "downloads"

    @property
    def library_cache(self) -> Path:
        return self.cache_dir / "library.json"

    def ensure(self) -> AppPaths:
        for d in (self.config_dir, self.data_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def app_paths() -> AppPaths:
    home = os.environ.get("TOKENRENT_HOME")
    if home:
        root = Path(home)
        return AppPaths(root / "config", root / "data", root / "cache")
    return AppPaths(
        Path(platformdirs.user_config_dir(APP_NAME)),
        Path(platformdirs.user_data_dir(APP_NAME)),
        Path(platformdirs.user_cache_dir(APP_NAME)),
    )
