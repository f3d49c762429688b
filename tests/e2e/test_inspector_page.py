"""The request inspector page in a real headless Chromium, against a real `llm-sidecar serve
--upstream demo`: requests made with the openai SDK appear live, filters narrow the list,
details open on click, the admin token guards it, and no prompt text reaches the page."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_cli import Serve, config_file, serve  # noqa: F401  (the fixture)

CHROMIUM = os.environ.get("SIDECAR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SIDECAR_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SIDECAR_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "artifacts"))
CANARY = "canary-prompt-7f3a91"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"Chromium ({CHROMIUM}) and chromedriver ({CHROMEDRIVER}) are needed: "
                    "./scripts/test installs them (apt, as root); or set SIDECAR_CHROMIUM / "
                    "SIDECAR_CHROMEDRIVER")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(driver: WebDriver, condition: object, what: str, timeout: float = 20) -> object:
    """Until `condition(driver)`; an element the page re-rendered meanwhile (stale) is asked
    again at the next poll, not a failure."""
    try:
        return WebDriverWait(driver, timeout, ignored_exceptions=(
            StaleElementReferenceException,)).until(condition)  # type: ignore[arg-type]
    except TimeoutException:
        raise AssertionError(f"the page never showed {what}") from None


def screenshot(driver: WebDriver, name: str) -> None:
    """Saved as a test artifact (tests/artifacts/, or $SIDECAR_TEST_ARTIFACTS)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


def rows(driver: WebDriver) -> list[str]:
    """The request table's rows as text, read in one script (the page may re-render the table
    between two WebDriver calls: elements found first would then be stale)."""
    texts: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#requests tbody tr')].map(r => r.innerText)")
    return texts


def chat(base: str, model: str, text: str, **kwargs: object) -> None:
    client = openai.OpenAI(base_url=base + "/v1", api_key="anything", max_retries=0)
    try:
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}],
            **kwargs)  # type: ignore[call-overload]
        if kwargs.get("stream"):
            for _ in answer:  # read it to the end, as an application would
                pass
    finally:
        client.close()


async def test_requests_appear_live_and_filter(serve: Serve, browser: WebDriver) -> None:  # noqa: F811
    """SDK requests show up in the open page without a reload, newest first, with model and
    status; a model filter narrows the list; a click opens details without content."""
    served = await serve("--upstream", "demo")
    browser.get(served.url + "/sidecar/ui")
    wait_for(browser, lambda d: d.find_element(By.ID, "conn").text == "live", "a live stream")

    await asyncio.to_thread(chat, served.url, "openai/gpt-4o-mini", "first question")
    await asyncio.to_thread(chat, served.url, "anthropic/claude-3-5-haiku", "second question")
    await asyncio.to_thread(chat, served.url, "openai/gpt-4o-mini", "third", stream=True)
    wait_for(browser, lambda d: len(rows(d)) == 3, "three requests")
    listed = rows(browser)
    assert "anthropic/claude-3-5-haiku" in listed[1] and "200" in listed[1]
    assert "openai/gpt-4o-mini" in listed[0]  # newest first

    browser.find_element(By.ID, "f-model").send_keys("claude")
    wait_for(browser, lambda d: len(rows(d)) == 1, "the filtered list")
    assert "anthropic/claude-3-5-haiku" in rows(browser)[0]

    browser.find_element(By.CSS_SELECTOR, "#requests tbody tr").click()
    wait_for(browser, lambda d: "Content capture is off" in d.find_element(
        By.ID, "detail-prompt").text, "the detail panel")
    assert "second question" not in browser.page_source


async def test_no_prompt_text_reaches_the_page_or_the_stream(
        serve: Serve, browser: WebDriver) -> None:  # noqa: F811
    """With content capture off, a prompt's text is neither in the event stream nor the page."""
    served = await serve("--upstream", "demo")
    browser.get(served.url + "/sidecar/ui")
    wait_for(browser, lambda d: d.find_element(By.ID, "conn").text == "live", "a live stream")
    async with aiohttp.ClientSession() as session:
        async with session.get(served.url + "/sidecar/events") as events:
            await asyncio.to_thread(chat, served.url, "openai/gpt-4o", CANARY)
            seen = b""
            while b"event: request" not in seen:
                seen += await asyncio.wait_for(events.content.readany(), timeout=20)
    assert b"openai/gpt-4o" in seen
    assert CANARY.encode() not in seen
    wait_for(browser, lambda d: len(rows(d)) == 1, "the request")
    browser.find_element(By.CSS_SELECTOR, "#requests tbody tr").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "detail-fields").text, "details")
    assert CANARY not in browser.page_source


async def test_admin_token_guards_the_page(serve: Serve, browser: WebDriver,  # noqa: F811
                                           tmp_path: Path) -> None:
    """With admin.token set, the page and its stream need it; `?token=` logs the browser in
    (a cookie) and the live list works."""
    path = config_file(tmp_path, "admin: {token: s3cret-admin}\n")
    served = await serve("--upstream", "demo", "--config", str(path))
    async with aiohttp.ClientSession() as session:
        for route in ("/sidecar/ui", "/sidecar/events", "/sidecar/requests",
                      "/sidecar/ui?token=no"):
            async with session.get(served.url + route) as response:
                assert response.status == 401, route
    browser.get(served.url + "/sidecar/ui?token=s3cret-admin")
    wait_for(browser, lambda d: d.find_element(By.ID, "conn").text == "live", "a live stream")
    assert "token" not in browser.current_url
    await asyncio.to_thread(chat, served.url, "openai/gpt-4o-mini", "guarded")
    wait_for(browser, lambda d: len(rows(d)) == 1, "the request")


async def test_cost_cache_and_budget_panels(serve: Serve, browser: WebDriver,  # noqa: F811
                                            tmp_path: Path) -> None:
    """Against the demo upstream's prices: each row shows its cost, a repeated request shows
    the cache hit (and a cost of $0), the budget panel shows what was spent of its limit, and
    the provider prompt cache panel its hit rate."""
    path = config_file(tmp_path, "spend:\n  budgets:\n    - {name: demo-daily, scope: global, "
                                 "window: day, limit_usd: 1}\n")
    served = await serve("--upstream", "demo", "--config", str(path))
    browser.get(served.url + "/sidecar/ui")
    wait_for(browser, lambda d: d.find_element(By.ID, "conn").text == "live", "a live stream")
    for _ in range(2):
        await asyncio.to_thread(chat, served.url, "openai/gpt-4o-mini", "same question")
    wait_for(browser, lambda d: len(rows(d)) == 2, "two requests")
    hit, miss = rows(browser)
    assert "HIT" in hit and "MISS" in miss
    assert "$0.00000" in miss and "$0 " in hit + " "  # the miss was billed, the hit was not
    # The page refreshes the panel when the event stream says spend moved a budget.
    wait_for(browser, lambda d: "of $1.00" in (text := d.find_element(By.ID, "budgets").text)
             and "demo-daily: $0.00000" in text, "the spent amount in the budget panel")
    wait_for(browser, lambda d: "openai/gpt-4o-mini" in d.find_element(By.ID, "spend").text,
             "spend by model")
    assert "% hits" in browser.find_element(By.ID, "cache").text
    # the provider's own prompt cache, from the same report: the demo caches nothing
    wait_for(browser, lambda d: "0.0 %\nof prompt tokens" in d.find_element(
        By.ID, "prompt-cache").text, "the provider prompt cache panel")
    # A few more, of every kind, for the README's picture.
    for model, text, extra in (("anthropic/claude-3-5-haiku", "a longer question about caching",
                                {}), ("openai/gpt-4o", "stream this answer", {"stream": True}),
                               ("meta-llama/llama-3.1-8b-instruct", "hello", {}),
                               ("demo/error-429", "rate limited", {})):
        with contextlib.suppress(openai.APIStatusError):
            await asyncio.to_thread(chat, served.url, model, text, **extra)
    wait_for(browser, lambda d: len(rows(d)) == 6, "six requests")
    # The panels refresh within a second of the last request's event: the latency panel lists
    # every model once they have.
    wait_for(browser, lambda d: all(model in d.find_element(By.ID, "latency").text for model in (
        "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku", "openai/gpt-4o",
        "meta-llama/llama-3.1-8b-instruct", "demo/error-429")), "the panels show every model")
    await asyncio.to_thread(screenshot, browser, "inspector.png")
