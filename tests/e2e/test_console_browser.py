"""The console in a real browser (Debian's headless Chromium through chromedriver, installed by
`make test`): it renders, the grid shows the day's counts and colours, Ack and the previewed
replay work, and a post without a session or with a bad CSRF token is refused.

`PULSE_CONSOLE_SCREENSHOT=docs/console.png` saves the page as the README shows it."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.console import ConsoleRig, console_rig, seed_today, seed_trouble

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAGE_TIMEOUT_SEC = 20
# The machine's network is closed: Chromium must not try to reach anything but 127.0.0.1.
QUIET = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1280,1100",
)


@contextmanager
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are missing: `make test` installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="pulse-chromium-")
    for flag in (*QUIET, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_TIMEOUT_SEC)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ConsoleRig, str]]:
    async with console_rig(tmp_path) as rig:
        await seed_today(rig)
        await seed_trouble(rig)
        runner = web.AppRunner(rig.app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield rig, f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


NAVIGATION_SEC = 15.0


def navigating(d: Any, act: Callable[[], object]) -> None:
    """Do what submits a form, then wait until the next page replaced this one (reading at
    once could read the old page on a busy machine)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = d.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(d, NAVIGATION_SEC).until(expected_conditions.staleness_of(old))


def drive(driver: Any, base: str, link: str, screenshot: str | None) -> dict[str, object]:
    """Everything the browser does, off the event loop that serves it; what it saw."""
    from selenium.webdriver.common.by import By

    d: Any = driver
    d.implicitly_wait(NAVIGATION_SEC)
    seen: dict[str, object] = {}
    d.get(f"{base}/console")
    seen["unsigned"] = d.find_element(By.ID, "refused").text
    d.get(link)
    cells = d.find_elements(By.CSS_SELECTOR, "#grid td[data-metric]")
    seen["grid"] = [
        (
            c.find_element(By.XPATH, "./preceding-sibling::th").text,
            c.get_attribute("data-metric"),
            c.find_element(By.CLASS_NAME, "count").text,
            c.get_attribute("data-status"),
            c.value_of_css_property("background-color"),
        )
        for c in cells
    ]
    if screenshot:
        d.save_screenshot(screenshot)
    navigating(d, d.find_element(By.CSS_SELECTOR, "#incidents button[name=ack]").click)
    seen["acked"] = d.find_element(By.ID, "message").text
    navigating(d, d.find_element(By.CSS_SELECTOR, "#incidents button[name=offer]").click)
    seen["preview"] = d.find_element(By.ID, "preview").text
    navigating(d, d.find_element(By.CSS_SELECTOR, "#preview button[name=replay]").click)
    seen["replayed"] = d.find_element(By.ID, "message").text
    csrf = d.find_element(By.CSS_SELECTOR, "#filter input[name=csrf]").get_attribute("value")
    # a bad CSRF token: the browser posts a form whose token was changed
    navigating(
        d,
        lambda: d.execute_script(
            "document.querySelector('#filter input[name=csrf]').value = 'forged';"
            "document.querySelector('#filter').submit();"
        ),
    )
    seen["forged"] = d.find_element(By.ID, "refused").text
    # no session: the cookie gone, the right token posted all the same
    d.delete_all_cookies()
    navigating(
        d,
        lambda: d.execute_script(
            "const form = document.createElement('form');"
            "form.method = 'post'; form.action = '/console/dead-letters/replay';"
            "const token = document.createElement('input');"
            "token.name = 'csrf'; token.value = arguments[0]; form.appendChild(token);"
            "document.body.appendChild(form); form.submit();",
            csrf,
        ),
    )
    seen["signed_out"] = d.find_element(By.ID, "refused").text
    return seen


async def test_the_console_works_in_a_real_browser(served: tuple[ConsoleRig, str]) -> None:
    rig, base = served
    link = rig.link(base)
    with browser() as driver:
        seen = await asyncio.wait_for(
            asyncio.to_thread(
                drive, driver, base, link, os.environ.get("PULSE_CONSOLE_SCREENSHOT")
            ),
            timeout=90,
        )

    assert "401" in str(seen["unsigned"])
    grid = {
        (name, metric): (count, status, colour)
        for name, metric, count, status, colour in seen["grid"]
    }
    assert grid[("John", "CALLS")][:2] == ("10", "Green")
    assert grid[("Jane", "CALLS")][:2] == ("8", "Yellow")
    assert grid[("John", "TEXTS")][:2] == ("2", "Red")
    colours = {status: colour for _, status, colour in grid.values()}
    assert len(set(colours.values())) == 3, colours  # three statuses, three colours
    assert "acknowledged" in str(seen["acked"])
    assert "1 dead letter(s) match" in str(seen["preview"])
    assert "Replayed 1 dead letter(s)" in str(seen["replayed"])
    assert "403" in str(seen["forged"]) and "CSRF" in str(seen["forged"])
    assert "401" in str(seen["signed_out"])
    (incident,) = await rig.open_incidents()
    assert incident.acked_by.startswith("console@127.0.0.1")
    assert await rig.inbox_depth() == 1
