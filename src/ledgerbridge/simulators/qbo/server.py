"""Run the simulator with uvicorn (blocking)."""

from __future__ import annotations

from typing import Any

import uvicorn

from .app import create_app
from .config import SimConfig


def serve(*, host: str = "127.0.0.1", port: int = 8001, **config_kwargs: Any) -> None:
    """Serve a fresh simulator until interrupted; kwargs are SimConfig fields."""
    log_level = str(config_kwargs.pop("log_level", "info"))
    app = create_app(SimConfig(**config_kwargs))
    uvicorn.run(app, host=host, port=port, log_level=log_level)
