"""Loopback servers in threads; they live in ``ledgerbridge.tools.servers`` now."""

from __future__ import annotations

from ledgerbridge.tools.servers import free_port, listening_socket, serve_in_thread

__all__ = ["free_port", "listening_socket", "serve_in_thread"]
