"""Simulators for third-party clients, which may talk to nothing else."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from ledgerbridge.simulators.qbo.app import SimConfig, create_app
from support.servers import serve_in_thread


@pytest.fixture
def start_sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Start a simulator (``SimConfig`` overrides as keywords); return its URL.

    Every ``requests`` call in the test (intuitlib, python-quickbooks and
    Authlib's sync session all use it) must go to one of the simulators
    started here; anything else fails the test instead of leaving the host.
    """
    allowed: set[str] = set()
    send = requests.adapters.HTTPAdapter.send

    def guarded_send(
        adapter: Any, request: requests.PreparedRequest, **kwargs: Any
    ) -> Any:
        if urlsplit(str(request.url)).netloc not in allowed:
            raise AssertionError(f"a library request left the simulator: {request.url}")
        return send(adapter, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", guarded_send)
    # requests-oauthlib (under python-quickbooks) and Authlib refuse plain http
    # unless told this is a test.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")

    with contextlib.ExitStack() as servers:

        def start(**overrides: Any) -> str:
            values: dict[str, Any] = {
                "rate_per_second": 0,
                "rate_per_minute": 0,
                "batch_per_minute": 0,
                "max_concurrency": 0,
                "seed": 7,
                **overrides,
            }
            url = servers.enter_context(
                serve_in_thread(create_app(SimConfig(**values)))
            )
            allowed.add(urlsplit(url).netloc)
            return url

        yield start
