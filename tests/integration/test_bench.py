"""``ledgerbridge bench`` prints its figures (shape only; timings are not asserted)."""

from __future__ import annotations

import pytest

from ledgerbridge.settings import Settings
from ledgerbridge.tools import bench

FIGURES = (
    "webhook ingest",
    "ingest latency p50",
    "ingest latency p95",
    "sync throughput",
    "QBO requests per synced invoice",
    "requests per echo",
    "peak RSS",
    "DB growth per 1000 events",
)


@pytest.mark.slow
async def test_bench_tiny_run_prints_every_figure(pg_admin_url, tmp_path):
    settings = Settings(database_url=pg_admin_url, data_dir=tmp_path / "lb")

    figures = await bench.run_bench(settings, invoices=3)

    text = bench.render(figures)
    for name in FIGURES:
        assert name in text, text
    assert {f.name for f in figures} == set(FIGURES)
    assert all(f.value >= 0 for f in figures)
