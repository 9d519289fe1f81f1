"""A small chaos run (``ledgerbridge chaos``) must pass every invariant."""

from __future__ import annotations

import pytest

from ledgerbridge.settings import Settings
from ledgerbridge.tools import chaos


@pytest.mark.slow
async def test_chaos_small_seeded_run_keeps_every_invariant(pg_admin_url, tmp_path):
    settings = Settings(database_url=pg_admin_url, data_dir=tmp_path / "lb")

    report = await chaos.run_chaos(settings, seed=7, invoices=8, steps=40)

    text = report.render()
    assert report.ok, text
    assert "RESULT: PASS" in text
    assert len(report.checks) == 7
    creates = ("create_internal", "create_qbo", "create_timeout")
    assert sum(report.counts[kind] for kind in creates) == 8
    # The run met faults and clashes, not only happy paths.
    assert report.counts["fault"] + report.counts["drop"] > 0
