"""Browser fixtures: Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture
async def page(stack: Any) -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            "the browser tests need Debian's Chromium: apt-get install chromium"
        )
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        context = await browser.new_context(
            base_url=stack.lb_url, viewport={"width": 1400, "height": 1000}
        )
        page = await context.new_page()
        yield page
        await browser.close()
