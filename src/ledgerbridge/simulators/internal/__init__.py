"""Reference internal invoicing system, reached only over HTTP."""

from __future__ import annotations

from ledgerbridge.simulators.internal.app import SimConfig, create_app

__all__ = ["SimConfig", "create_app"]
