"""QuickBooks Online Accounting API v3 stand-in, reached only over HTTP."""

from __future__ import annotations
