"""Alembic environment of a vendor's database (server_stub/alembic_env.py)."""
from server_stub.alembic_env import run_migrations
from server_stub.models import Base

run_migrations(Base.metadata)
