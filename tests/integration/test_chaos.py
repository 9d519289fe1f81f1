"""A small chaos run (``ledgerbridge chaos``) must pass every invariant."""

from __future__ import annotations

import pytest

from ledgerbridge.settings import Settings
from ledgerbridge.tools import chaos


# Seed 14 creates an invoice in QBO and voids it there before LedgerBridge
# has synced it; the engine then tries to create a void invoice without lines
# in the internal system, which answers 422, and the record becomes a dead
# letter. It fails until the engine handles that case (reported, not fixed
# here: the engine belongs to another change).
@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 14])
async def test_chaos_small_seeded_run_keeps_every_invariant(
    pg_admin_url, tmp_path, seed
):
    settings = Settings(database_url=pg_admin_url, data_dir=tmp_path / "lb")

    report = await chaos.run_chaos(settings, seed=seed, invoices=8, steps=40)

    text = report.render()
    assert report.ok, text
    assert "RESULT: PASS" in text
    assert len(report.checks) == 7
    creates = ("create_internal", "create_qbo", "create_timeout")
    assert sum(report.counts[kind] for kind in creates) == 8
    # The run met faults and clashes, not only happy paths.
    assert report.counts["fault"] + report.counts["drop"] > 0
