"""LedgerBridge: two-way invoice sync between an internal system and QuickBooks Online."""

from __future__ import annotations

__version__ = "0.1.0"
