"""The MSP's FastAPI application factory (uvicorn:
server_stub.mall.app:create_app, factory=True). Problem details, logs and
sessions are the vendor server's; the routes and the database are the MSP's."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from ..app import freeze_start_up_objects, install_problem_handlers
from ..core.config import get_settings
from ..logs import AccessLogMiddleware, setup_logging
from ..network.signed_routes import MALL_PREFIX, SignAnswersMiddleware
from ..schemas.common import HealthOut
from .identity import msp_key
from . import saga, settlement
from .backup_routes import router as backup_router
from .exchange_routes import router as exchange_router
from .open_payment_routes import router as open_payment_router
from .open_routes import router as open_router
from .routes import router
from .settlement_routes import router as settlement_router
from .vocabulary import MSP_ID


def _signer() -> tuple[str, Ed25519PrivateKey]:
    return MSP_ID, msp_key()


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    freeze_start_up_objects()
    saga.start_worker()   # messages left by an earlier run go on at once
    scheduler = settlement.Scheduler()
    scheduler.start()
    yield
    scheduler.stop()
    saga.stop_worker()


def create_app() -> FastAPI:
    settings = get_settings()
    setup_logging(settings.log_level)
    app = FastAPI(title="TokenRent Mall Service Provider", version="0.1.0", lifespan=_lifespan,
                  description="Members, the directory and the records of the mall network (see docs/mall.md).")
    app.include_router(router)
    app.include_router(exchange_router)
    app.include_router(settlement_router)
    app.include_router(backup_router)
    app.include_router(open_payment_router)
    app.include_router(open_router)

    @app.get("/v1/health", tags=["meta"], response_model=HealthOut)
    def health() -> HealthOut:
        return HealthOut(status="ok")

    install_problem_handlers(app)
    app.add_middleware(SignAnswersMiddleware, prefix=MALL_PREFIX, signer=_signer)
    app.add_middleware(AccessLogMiddleware)
    return app
