"""A real browser for the Web UI tests: Debian's chromium driven by Playwright.

Playwright's own browser download does not work on these machines, so the tests drive the
distribution's chromium (scripts/ensure-system-deps.sh installs it). Every lookup names what
it looks for, so a Web UI that changed fails with "no <thing> on the page" and a screenshot
instead of a bare Playwright timeout.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, ViewportSize, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
VIEWPORT = ViewportSize(width=1400, height=1000)


def require_chromium() -> str:
    """In CI a missing browser is a broken setup and must fail; on a laptop without Debian's
    chromium the test is skipped with the command that fixes it."""
    found = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if found:
        return found
    reason = (
        f"chromium not found at {CHROMIUM}: run scripts/ensure-system-deps.sh "
        "(apt-get install -y chromium); Playwright's own browser download is not used"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@asynccontextmanager
async def browser_page(timeout_s: float = 30.0) -> AsyncIterator[Page]:
    """One headless chromium with one page, closed on the way out whatever happened."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(timeout_s * 1000)
            yield page
        finally:
            await browser.close()


class UiDriver:
    """Finds and clicks by role and visible text, and keeps screenshots under
    tests/artifacts/<prefix>-<name>.png so a run can be looked at afterwards."""

    def __init__(self, page: Page, prefix: str, timeout_s: float = 30.0) -> None:
        self.page = page
        self.prefix = prefix
        self.timeout_ms = timeout_s * 1000
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for stale in ARTIFACTS.glob(f"{prefix}-*.png"):
            stale.unlink()  # a screenshot left from an earlier run must not pass for this one

    async def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{self.prefix}-{name}.png"
        await self.page.screenshot(path=path, full_page=True)
        return path

    async def find(self, locator: Locator, what: str) -> Locator:
        """Wait until `locator` is visible; otherwise fail naming `what` and the screenshot."""
        try:
            await locator.first.wait_for(state="visible", timeout=self.timeout_ms)
        except PlaywrightTimeout:
            await self.fail(f"no {what} on the page", locator)
        return locator.first

    async def click(self, locator: Locator, what: str) -> None:
        target = await self.find(locator, what)
        try:
            await target.click(timeout=self.timeout_ms)
        except PlaywrightTimeout:
            await self.fail(f"{what} is on the page but cannot be clicked", locator)

    async def gone(self, locator: Locator, what: str) -> None:
        """Wait until `locator` is hidden (a dialog closing after Submit)."""
        try:
            await locator.wait_for(state="hidden", timeout=self.timeout_ms)
        except PlaywrightTimeout:
            await self.fail(f"{what} is still open", locator)

    async def fail(self, problem: str, locator: Locator) -> None:
        slug = re.sub(r"[^a-z0-9]+", "-", problem.lower()).strip("-")[:60]
        path = await self.shot(f"failed-{slug}")
        pytest.fail(
            f"Web UI: {problem} after {self.timeout_ms / 1000:.0f}s at {self.page.url} "
            f"(looked for {locator}); screenshot: {path}"
        )
