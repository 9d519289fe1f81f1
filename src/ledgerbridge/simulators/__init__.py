"""Stand-ins for QBO and the internal system, reached only over HTTP."""

from __future__ import annotations
