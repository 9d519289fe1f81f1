"""Build the simulator's FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import api, control, oauth
from .clock import SimClock
from .config import SimConfig
from .sim import Simulator

__all__ = ["SimConfig", "create_app"]


def create_app(
    config: SimConfig | None = None, *, clock: SimClock | None = None
) -> FastAPI:
    """A QBO stand-in: API v3, OAuth, webhooks and the ``/_sim`` control API.

    Webhook deliveries run as tasks in the app's own event loop; the lifespan
    opens their HTTP client and cancels whatever is still pending on shutdown.
    """
    sim = Simulator(config or SimConfig(), clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await sim.dispatcher.start()
        try:
            yield
        finally:
            await sim.dispatcher.stop()

    app = FastAPI(
        title="LedgerBridge QBO simulator",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sim = sim
    app.include_router(api.build_router(sim))
    app.include_router(oauth.build_router(sim))
    app.include_router(control.build_router(sim))
    return app
