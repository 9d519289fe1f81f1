"""Run the reference internal system under uvicorn."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn

from ledgerbridge.simulators.internal import app as app_module

DEFAULT_PORT = 8002


def serve(
    *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, **config_kwargs: Any
) -> None:
    """Serve until interrupted; ``config_kwargs`` are ``SimConfig`` fields."""
    if isinstance(config_kwargs.get("state_path"), str):
        config_kwargs["state_path"] = Path(config_kwargs["state_path"])
    config = app_module.SimConfig(**config_kwargs)
    uvicorn.run(
        app_module.create_app(config), host=host, port=port, log_level="warning"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--webhook-url")
    parser.add_argument("--state-path", type=Path)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    serve(
        host=args.host,
        port=args.port,
        webhook_url=args.webhook_url,
        state_path=args.state_path,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
