"""Alembic environment of the MSP's database (server_stub/alembic_env.py)."""
from server_stub.alembic_env import run_migrations
from server_stub.mall.models import MallBase

run_migrations(MallBase.metadata)
