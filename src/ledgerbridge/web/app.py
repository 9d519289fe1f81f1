"""The FastAPI app factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ledgerbridge import runtime
from ledgerbridge.ingest import routes as ingest_routes
from ledgerbridge.settings import Settings
from ledgerbridge.web.routes import api, dashboard, demo, health, oauth

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, *, services: Any = None) -> FastAPI:
    """The whole HTTP surface. With ``services`` given (tests, the demo's
    in-process worker) the app uses them; otherwise it opens its own."""
    settings = settings or (services.settings if services else Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        async with runtime.open_services(settings) as opened:
            app.state.services = opened
            yield

    app = FastAPI(title="LedgerBridge", version="0.1.0", lifespan=lifespan)
    app.include_router(ingest_routes.router)
    app.include_router(api.router)
    app.include_router(health.router)
    app.include_router(oauth.router)
    app.include_router(dashboard.router)
    app.include_router(demo.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
