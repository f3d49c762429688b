"""The inspector's Compare view and Shadow panel in a real headless Chromium, against the real
app on a real socket and fake providers the test steers: the answers stream into their cards
as the chunks arrive (a gate holds one model half-way while the page already shows its first
words), then each card shows its cost and latency; a local key is asked for when
auth.required; on a separate admin listener the view needs the admin token and the key."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import RunningSidecar, StartSidecar, merge
from tests.e2e.routing_helpers import MakeUpstreams, provider
from tests.e2e.test_inspector_page import browser, screenshot, wait_for  # noqa: F401
from tests.fakes.ports import free_port
from tests.fakes.upstream import FakeUpstream, Script, chat_answer, chat_chunks

KEY = "tok-page"


async def sidecar_for(start_sidecar: StartSidecar, upstreams: MakeUpstreams,
                      extra: dict[str, Any] | None = None
                      ) -> tuple[RunningSidecar, list[FakeUpstream]]:
    fakes = await upstreams(2)
    config = {"providers": [provider("fast", fakes[0], "demo/fast"),
                            provider("slow", fakes[1], "demo/slow", "demo/candidate")],
              "retry": {"attempts": 1},
              "spend": {"prices": {"demo/*": {"prompt": 1e-6, "completion": 2e-6}}}}
    return await start_sidecar(merge(config, extra or {})), fakes


def cards(driver: WebDriver) -> list[str]:
    return [card.text for card in driver.find_elements(By.CSS_SELECTOR, "#c-results .c-card")]


def compare_in_page(driver: WebDriver, url: str, models: list[str], prompt: str,
                    key: str | None = None) -> None:
    driver.get(url)
    wait_for(driver, lambda d: d.find_element(By.ID, "view-compare").is_displayed(), "the page")
    driver.find_element(By.ID, "view-compare").click()
    for model in models:
        driver.find_element(By.ID, "c-model").send_keys(model)
        driver.find_element(By.ID, "c-add").click()
    if key is not None:
        wait_for(driver, lambda d: d.find_element(By.ID, "c-key").is_displayed(), "the key field")
        driver.find_element(By.ID, "c-key").send_keys(key)
    driver.find_element(By.ID, "c-prompt").send_keys(prompt)
    driver.find_element(By.ID, "c-run").click()


async def test_answers_stream_into_their_cards_with_cost_and_latency(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, browser: WebDriver) -> None:  # noqa: F811
    """Two models side by side: the slow one's first words appear in its card while its
    provider still holds the rest, the fast one is done with its tokens, cost and latency;
    once released, both are complete and the summary names the cheapest and fastest."""
    sidecar, (fast, slow) = await sidecar_for(start_sidecar, upstreams)
    gate = asyncio.Event()
    fast.script("/chat/completions", Script(sse=chat_chunks("demo/fast", ["Quick ", "answer."])))
    slow.script("/chat/completions", Script(
        sse=chat_chunks("demo/slow", ["Slow ", "but ", "thorough."]), wait_before={1: gate}))
    await asyncio.to_thread(compare_in_page, browser, sidecar.url + "/sidecar/ui",
                            ["demo/fast", "demo/slow"], "Explain tides.")
    assert not browser.find_element(By.ID, "requests").is_displayed()  # the Compare view
    await asyncio.to_thread(wait_for, browser, lambda d: len(cards(d)) == 2 and "Slow" in cards(
        d)[1] and "Quick answer." in cards(d)[0] and "tokens" in cards(d)[0],
        "the fast answer done and the slow one's first words")
    assert "thorough" not in cards(browser)[1]  # held upstream: only the first chunk is in
    assert "$" in cards(browser)[0] and "ms" in cards(browser)[0]
    gate.set()
    await asyncio.to_thread(wait_for, browser, lambda d: "thorough." in cards(d)[1]
                            and "tokens" in cards(d)[1], "the slow answer complete")
    summary = browser.find_element(By.ID, "c-summary").text
    assert "cheapest" in summary and "fastest demo/fast" in summary
    await asyncio.to_thread(screenshot, browser, "compare.png")


async def test_a_local_key_is_asked_for_when_auth_is_required(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, browser: WebDriver) -> None:  # noqa: F811
    """With auth.required the page shows a key field; without a key the compare is refused
    with advice, with the key it runs."""
    sidecar, (fast, _) = await sidecar_for(start_sidecar, upstreams, {
        "auth": {"required": True, "keys": [{"name": "page", "token": KEY}]}})
    fast.script("/chat/completions", Script(json=chat_answer("demo/fast", "Keyed answer.")))
    await asyncio.to_thread(compare_in_page, browser, sidecar.url + "/sidecar/ui",
                            ["demo/fast"], "hello")
    await asyncio.to_thread(wait_for, browser, lambda d: "local key" in d.find_element(
        By.ID, "c-status").text, "the advice to type a key")
    assert fast.requests == []
    await asyncio.to_thread(compare_in_page, browser, sidecar.url + "/sidecar/ui",
                            ["demo/fast"], "hello", KEY)
    await asyncio.to_thread(wait_for, browser, lambda d: "Keyed answer." in "".join(cards(d)),
                            "the answer")


async def test_on_the_admin_listener_with_a_token_and_the_shadow_panel(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, browser: WebDriver) -> None:  # noqa: F811
    """On a separate admin listener the page (logged in with ?token=) runs a compare with a
    local key; the Shadow panel shows a rule's pairs and saving once primaries were copied."""
    port = free_port()
    sidecar, (fast, _) = await sidecar_for(start_sidecar, upstreams, {
        "auth": {"required": True, "keys": [{"name": "page", "token": KEY}]},
        "admin": {"port": port, "token": "adm-tok"},
        "shadow": [{"name": "cheaper", "match": {"model": "demo/fast"},
                    "candidate": "demo/candidate", "percent": 100, "budget_usd": 1}]})
    sdk = openai.AsyncOpenAI(base_url=sidecar.v1, api_key=KEY, max_retries=0)
    for _ in range(2):
        await sdk.chat.completions.create(model="demo/fast", messages=[
            {"role": "user", "content": "copy me"}], extra_headers={"Cache-Control": "no-store"})
    await sdk.close()
    await asyncio.to_thread(browser.get, sidecar.admin_url + "/sidecar/ui?token=adm-tok")
    await asyncio.to_thread(wait_for, browser, lambda d: "cheaper → demo/candidate" in
                            d.find_element(By.ID, "shadow").text, "the shadow rule")
    await asyncio.to_thread(wait_for, browser, lambda d: [td.text for td in d.find_elements(
        By.CSS_SELECTOR, "#shadow tr:nth-child(2) td")][1:2] == ["2"], "two pairs")
    await asyncio.to_thread(screenshot, browser, "shadow-panel.png")
    fast.script("/chat/completions", Script(json=chat_answer("demo/fast", "Admin side.")))
    await asyncio.to_thread(compare_in_page, browser, sidecar.admin_url + "/sidecar/ui",
                            ["demo/fast"], "hello", KEY)
    await asyncio.to_thread(wait_for, browser, lambda d: "Admin side." in "".join(cards(d)),
                            "the answer")
