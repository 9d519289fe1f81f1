"""Connector for the internal invoicing system's HTTP contract."""

from __future__ import annotations
