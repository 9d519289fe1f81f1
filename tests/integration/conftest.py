"""Integration fixtures: the full stack on loopback."""

from __future__ import annotations

import pytest

from support.stack import run_stack


@pytest.fixture
async def stack(db_url, tmp_path):
    async with run_stack(db_url, tmp_path) as running:
        yield running
