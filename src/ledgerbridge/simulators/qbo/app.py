"""Build the simulator's FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import api, control, oauth
from .clock import SimClock
from .config import SimConfig
from .sim import Simulator

__all__ = ["SimConfig", "create_app"]


class TraceIdMiddleware:
    """Stamp every response with an ``intuit_tid`` unless a route already did."""

    def __init__(self, app: ASGIApp, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_tid(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"intuit_tid" for name, _ in headers):
                    headers.append(
                        (b"intuit_tid", api.new_tid(self.sim).encode("ascii"))
                    )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_tid)


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
    app.add_middleware(TraceIdMiddleware, sim=sim)
    app.include_router(api.build_router(sim))
    app.include_router(oauth.build_router(sim))
    app.include_router(control.build_router(sim))
    return app
