"""The MSP's schema comes ONLY from its Alembic migrations
(server_stub/mall/migrations/versions, revisions m0001...), as the vendor's
comes from server_stub/migrations: same helpers, another script location.

Both keep Alembic's default version table: pointed at a vendor's database by
mistake, the MSP stops at start (unknown revision) instead of sharing it."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from ..db import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the MSP's database to the newest revision."""
    command.upgrade(alembic_config(url), "heads")


def revision(url: str, message: str, rev_id: str) -> None:
    """Developer helper: autogenerate the next migration (rev_id "m000N") against an up-to-date db."""
    command.revision(alembic_config(url), message=message, autogenerate=True, rev_id=rev_id)


def heads() -> list[str]:
    """The current head revision(s); a new migration's down_revision must be the one head."""
    return list(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


if __name__ == "__main__":  # python -m server_stub.mall.migrate  -> prints the heads
    print(" ".join(heads()))
