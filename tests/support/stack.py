"""The whole system on loopback; it lives in ``ledgerbridge.tools.stack`` now.

Kept so the tests' ``from support.stack import run_stack`` keeps working.
"""

from __future__ import annotations

from ledgerbridge.tools.stack import (
    MAX_SETTLE_ROUNDS,
    Stack,
    open_stack,
    run_stack,
    throwaway_database,
)

__all__ = [
    "MAX_SETTLE_ROUNDS",
    "Stack",
    "open_stack",
    "run_stack",
    "throwaway_database",
]
