"""All route modules, under /v1. Add yours here (one module per area)."""
from fastapi import APIRouter

from .routes import accounts, admin, wallet
from .routes import admin_store, store
from .routes import mall, mall_network
from .routes import open_tokens

api_router = APIRouter(prefix="/v1")
api_router.include_router(accounts.router)
api_router.include_router(wallet.router)
api_router.include_router(admin.router)
api_router.include_router(store.router)
api_router.include_router(admin_store.router)
api_router.include_router(mall.router)
api_router.include_router(mall_network.router)
api_router.include_router(open_tokens.router)
