"""Schema management: the schema comes ONLY from Alembic migrations
(server_stub/migrations/versions), for SQLite too."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .db import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the database to the newest revision (all heads)."""
    command.upgrade(alembic_config(url), "heads")


def revision(url: str, message: str) -> None:
    """Developer helper: autogenerate a migration against an up-to-date db."""
    command.revision(alembic_config(url), message=message, autogenerate=True)


def heads() -> list[str]:
    """The current head revision(s); a new migration's down_revision must be the one head."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


if __name__ == "__main__":  # python -m server_stub.migrate  -> prints the heads
    print(" ".join(heads()))
