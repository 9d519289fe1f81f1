"""Run the command line interface: ``python -m ledgerbridge``."""

from __future__ import annotations

from ledgerbridge import cli

cli.main()
