"""The web page of `t2l serve` in a real headless browser (Debian's chromium and chromium-driver, which .ci/run
installs), against a real server on a localhost port: describe a task, make the adapter, send a message, read both
answers from the page; what a waiting column shows while the batch is full, Stop, the mark of an answer cut at max
tokens, search by meaning, a phone's width, downloads with an API key, an empty description."""

import json
import shutil
import threading
import time
from dataclasses import replace

import httpx
import openai
import pytest

from t2l.chat import Generation
from t2l_cli.server.api import create_app
from t2l_cli.server.background import serving
from t2l_cli.server.service import ServeSettings, Service

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver; .ci/run installs them)",
    ),
]
KEY = "page-test-key"
DONE = "#{} .answer[data-done='1']"


@pytest.fixture
def downloads(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(downloads):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=DriverService(DRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


def service_for(trained_hypernet, tiny_base_dir, **settings) -> Service:
    return Service(ServeSettings(base=str(tiny_base_dir), hypernet=str(trained_hypernet[0]), **settings))


@pytest.fixture
def url(trained_hypernet, tiny_base_dir):
    with serving(create_app(service_for(trained_hypernet, tiny_base_dir))) as base_url:
        yield base_url


@pytest.fixture
def keyed_url(trained_hypernet, tiny_base_dir):
    with serving(create_app(service_for(trained_hypernet, tiny_base_dir), api_key=KEY)) as base_url:
        yield base_url


class Held:
    """A server whose batch takes one row, whose answers never meet an end token, and whose scheduler stops at each
    answer's admission until `go` is set: the first answer of a request then stands 'generating' (admitted, no
    token yet) and the next one 'queued'. `answers` are the generations the server made, in order."""

    def __init__(self, url: str, service: Service):
        self.url, self.service, self.go, self.answers = url, service, threading.Event(), []


@pytest.fixture
def held(trained_hypernet, tiny_base_dir, monkeypatch):
    service = service_for(trained_hypernet, tiny_base_dir, max_batch=1)
    engine = service.engine
    no_end = tuple((i, -100.0) for i in engine.end_ids)
    made = engine.generate

    def generate(ids, sampling, adapter):
        gen = made(ids, replace(sampling, logit_bias=sampling.logit_bias + no_end), adapter)
        state.answers.append(gen)
        return gen

    started, step = Generation.started, engine.scheduler._step

    def admitted(gen):
        started(gen)
        state.go.wait()

    def slow_step():
        time.sleep(0.01)  # 128 tokens take over a second: time for the server to see a client leave
        step()

    monkeypatch.setattr(engine, "generate", generate)
    monkeypatch.setattr(Generation, "started", admitted)
    monkeypatch.setattr(engine.scheduler, "_step", slow_step)
    with serving(create_app(service)) as base_url:
        state = Held(base_url, service)
        yield state
        state.go.set()


def wait_for(browser, seconds: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds)


def by_id(browser, name):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, name)


def css(browser, selector):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def set_field(browser, name: str, value: str) -> None:
    box = by_id(browser, name)
    box.clear()
    box.send_keys(value)


def ask(browser, message: str) -> None:
    by_id(browser, "message").send_keys(message)
    by_id(browser, "send").click()


def test_describe_make_and_chat_beside_the_base(browser, url):
    wait = wait_for(browser)
    browser.get(url)
    wait.until(lambda d: "base model:" in by_id(d, "base-name").text)
    by_id(browser, "description").send_keys("answer in upper case")
    by_id(browser, "adapter-name").send_keys("shouty")
    by_id(browser, "make").click()
    wait.until(lambda d: by_id(d, "details-description").text == "answer in upper case")
    made = httpx.get(f"{url}/v1/adapters").json()["data"][0]
    adapter_id = made["id"]
    assert made["name"] == "shouty"  # the name field reached the registry
    assert by_id(browser, "current").text == "shouty"
    assert by_id(browser, "make-status").text == "made shouty"
    assert by_id(browser, "download-file").get_attribute("href").endswith(f"/{adapter_id}/download")
    assert "answer in upper case" in by_id(browser, "card").get_attribute("textContent")
    set_field(browser, "temperature", "0")
    set_field(browser, "max-tokens", "10")
    ask(browser, "hello")
    wait.until(lambda d: css(d, DONE.format("base-log")) and css(d, DONE.format("adapter-log")))
    boxes = {side: css(browser, DONE.format(f"{side}-log"))[0] for side in ("base", "adapter")}
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    finishes = set()
    for side, model in (("base", "base"), ("adapter", adapter_id)):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], temperature=0, max_tokens=10
        )
        box, choice = boxes[side], reply.choices[0]
        assert box.find_element("css selector", ".text").get_attribute("textContent") == choice.message.content
        # the mark of an answer cut at max tokens, and only then
        assert box.get_attribute("data-finish") == choice.finish_reason
        note = box.find_element("css selector", ".note").text
        assert ("stopped at max tokens (10)" in note) == (choice.finish_reason == "length"), note
        finishes.add(choice.finish_reason)
    assert "length" in finishes  # the tiny model runs on past 10 tokens: the mark was shown at least once
    texts = [b.find_element("css selector", ".text").get_attribute("textContent") for b in boxes.values()]
    assert texts[0] != texts[1]
    assert [e.text for e in css(browser, "#base-log .user")] == ["hello"]


def test_the_examples_box_makes_an_adapter_from_examples_too(browser, trained_hypernet, tiny_base_dir, tmp_path):
    """Examples typed one a line (INPUT -> OUTPUT, or a JSON object) reach POST /v1/adapters; the adapter is the one
    the API makes from the same description and examples, and its details say so; a line that is neither is named
    and nothing is sent; a hypernetwork that reads descriptions only answers with its 400 on the page."""
    from conftest import make_examples_hypernet

    folder = make_examples_hypernet(trained_hypernet[0], tmp_path / "examples-hypernet")
    service = Service(ServeSettings(base=str(tiny_base_dir), hypernet=str(folder)))
    wait = wait_for(browser)
    with serving(create_app(service)) as url:
        browser.get(url)
        wait.until(lambda d: "base model:" in by_id(d, "base-name").text)
        by_id(browser, "description").send_keys("answer in upper case")
        by_id(browser, "examples").send_keys('no arrow here\n{"input": "hi", "output": "HI"}')
        by_id(browser, "make").click()
        wait.until(lambda d: "line 1" in by_id(d, "make-status").text)
        assert '"->"' in by_id(browser, "make-status").text and httpx.get(f"{url}/v1/adapters").json()["data"] == []
        set_field(browser, "examples", 'a -> b -> c\n\n{"input": "hi", "output": "HI"}')
        by_id(browser, "make").click()
        wait.until(lambda d: "(made from 2 examples too)" in by_id(d, "details-description").text)
        (made,) = httpx.get(f"{url}/v1/adapters").json()["data"]
        shots = [{"input": "a -> b", "output": "c"}, {"input": "hi", "output": "HI"}]  # split at the last arrow
        again = httpx.post(f"{url}/v1/adapters", json={"description": "answer in upper case", "examples": shots})
        assert again.json()["id"] == made["id"] and made["examples_count"] == 2  # the very adapter those make
        assert by_id(browser, "examples").get_attribute("value") == ""
        set_field(browser, "description", "")
        set_field(browser, "examples", "hi -> HI")
        by_id(browser, "make").click()
        wait.until(lambda d: by_id(d, "details-description").text == "(made from 1 example alone)")
    with serving(create_app(service_for(trained_hypernet, tiny_base_dir))) as url:
        browser.get(url)
        wait.until(lambda d: "base model:" in by_id(d, "base-name").text)
        by_id(browser, "description").send_keys("answer in upper case")
        by_id(browser, "examples").send_keys("hi -> HI")
        by_id(browser, "make").click()
        wait.until(lambda d: "reads descriptions only" in by_id(d, "make-status").text)
        assert "problem" in by_id(browser, "make-status").get_attribute("class")


def test_an_empty_description_says_why_nothing_happens(browser, url):
    browser.get(url)
    wait_for(browser).until(lambda d: "base model:" in by_id(d, "base-name").text)
    by_id(browser, "adapter-name").send_keys("nameless")
    by_id(browser, "make").click()
    status = by_id(browser, "make-status")
    assert "description" in status.text and "problem" in status.get_attribute("class")
    assert browser.switch_to.active_element == by_id(browser, "description")
    time.sleep(0.5)
    assert httpx.get(f"{url}/v1/adapters").json()["data"] == []  # nothing was sent


def test_the_search_box_finds_adapters_by_words_and_by_meaning(browser, url):
    from selenium.webdriver.support.ui import Select

    for description in (
        "classify the sentiment of movie reviews",
        "translate English to French",
        "answer in small letters",
    ):
        httpx.post(f"{url}/v1/adapters", json={"description": description}, timeout=60).raise_for_status()
    wait = wait_for(browser, 60)
    browser.get(url)
    items = lambda d: [e.text for e in css(d, "#adapters li")]  # noqa: E731
    wait.until(lambda d: len(items(d)) == 3)
    by_id(browser, "search").send_keys("small")
    wait.until(lambda d: len(items(d)) == 1)
    assert "answer in small letters" in items(browser)[0]
    css(browser, "#adapters li")[0].click()
    wait.until(lambda d: by_id(d, "details-description").text == "answer in small letters")
    assert by_id(browser, "scores").text == "no scores yet (t2l eval)"
    # words that no description holds: nothing by words, the film review adapter first by meaning
    set_field(browser, "search", "is this film review positive?")
    wait.until(lambda d: not items(d) and "no adapter" in by_id(d, "adapters-note").text)
    Select(by_id(browser, "search-by")).select_by_value("meaning")
    wait.until(lambda d: len(items(d)) == 3)
    ranked = items(browser)
    assert "classify the sentiment of movie reviews" in ranked[0]
    sims = [float(e.text) for e in css(browser, "#adapters li .similarity")]
    assert len(sims) == 3 and sims == sorted(sims, reverse=True)
    served = httpx.get(f"{url}/v1/adapters", params={"q": "is this film review positive?", "by": "meaning"}).json()
    assert [round(a["similarity"], 2) for a in served["data"]] == sims


def test_a_waiting_column_says_queued_or_generating_and_stop_ends_both(browser, held):
    made = httpx.post(f"{held.url}/v1/adapters", json={"description": "answer in upper case"}, timeout=60).json()
    wait = wait_for(browser, 30)
    browser.get(held.url)
    wait.until(lambda d: css(d, "#adapters li"))
    css(browser, "#adapters li")[0].click()
    wait.until(lambda d: by_id(d, "current").text == made["id"][:8])
    assert not by_id(browser, "stop").is_displayed()
    ask(browser, "hello")
    answers = lambda d: css(d, ".answer")  # noqa: E731
    states = lambda d: sorted(b.get_attribute("data-state") for b in answers(d))  # noqa: E731
    # one row in the batch: the first answer is admitted and held before its first token, the other waits
    wait.until(lambda d: states(d) == ["generating", "queued"])
    notes = {b.get_attribute("data-state"): b.find_element("css selector", ".note").text for b in answers(browser)}
    assert notes["generating"].startswith("generating")
    assert notes["queued"] == "queued: next to join the batch"
    assert by_id(browser, "stop").is_displayed() and not by_id(browser, "send").is_enabled()
    by_id(browser, "stop").click()
    wait.until(lambda d: states(d) == ["stopped", "stopped"] and len(css(d, ".answer[data-done='1']")) == 2)
    assert all(
        b.find_element("css selector", ".note").text == "stopped before the answer began" for b in answers(browser)
    )
    assert by_id(browser, "send").is_enabled() and not by_id(browser, "stop").is_displayed()
    # the server heard the fetches end: both rows left the batch early instead of running to max tokens
    held.go.set()
    deadline = time.monotonic() + 20
    while not all(g.done.is_set() for g in held.answers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(held.answers) == 2
    assert [g.finish_reason for g in held.answers] == ["interrupted", "interrupted"]
    assert all(len(g.token_ids) < 128 for g in held.answers)
    # the page goes on: the next message is answered in both columns
    ask(browser, "again")
    wait.until(lambda d: len(css(d, ".answer[data-done='1']")) == 4)
    assert sorted(b.get_attribute("data-state") for b in answers(browser))[-2:] == ["stopped", "stopped"]


def test_the_status_comment_leaves_the_openai_stream_intact(held):
    body = {
        "model": "base",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", f"{held.url}/v1/chat/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        first = next(lines)
        held.go.set()
        rest = [line for line in lines if line]
    assert first.startswith(": t2l ") and json.loads(first[6:])["status"] in ("queued", "generating")
    assert all(line.startswith(("data: ", ": t2l ")) for line in rest) and rest[-1] == "data: [DONE]"
    client = openai.OpenAI(base_url=f"{held.url}/v1", api_key="unused", max_retries=0)
    streamed = client.chat.completions.create(**body)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    whole = client.chat.completions.create(**{**body, "stream": False})
    assert text == whole.choices[0].message.content and len(text) > 0


def test_the_page_fits_a_phone_390_pixels_wide(browser, url):
    long_word = "supercalifragilistic" * 5
    httpx.post(
        f"{url}/v1/adapters", json={"description": f"answer in upper case {long_word}", "name": "phone"}, timeout=60
    ).raise_for_status()
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}
    )
    wait = wait_for(browser)
    browser.get(url)
    wait.until(lambda d: css(d, "#adapters li"))
    css(browser, "#adapters li")[0].click()
    wait.until(lambda d: by_id(d, "current").text == "phone")
    set_field(browser, "max-tokens", "20")
    ask(browser, f"hello {long_word}")
    wait.until(lambda d: len(css(d, ".answer[data-done='1']")) == 2)
    assert browser.execute_script("return window.innerWidth") == 390
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    wide = browser.execute_script(
        "return [...document.querySelectorAll('body *')].filter(e => e.getClientRects().length)"
        ".filter(e => e.getBoundingClientRect().right > 390.5).map(e => e.id || e.className || e.tagName)"
    )
    assert wide == []
    # the two answers one above the other, each the width of the page
    base, adapter = (by_id(browser, f"{side}-log").rect for side in ("base", "adapter"))
    assert adapter["y"] >= base["y"] + base["height"] and base["width"] > 300
    assert by_id(browser, "send").is_displayed() and by_id(browser, "make").is_displayed()


def unpacked(data: bytes):
    """A zip's files and their bytes (the zip itself holds the time it was made); any other file as it is."""
    import io
    import zipfile

    if not data.startswith(b"PK"):
        return data
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_downloads_carry_the_api_key(browser, keyed_url, downloads):
    from selenium.webdriver.common.keys import Keys

    headers = {"Authorization": f"Bearer {KEY}"}
    made = httpx.post(
        f"{keyed_url}/v1/adapters",
        json={"description": "answer in upper case", "name": "keyed"},
        headers=headers,
        timeout=60,
    ).json()
    wait = wait_for(browser)
    browser.get(keyed_url)
    wait.until(lambda d: by_id(d, "key-box").is_displayed())  # the list was refused: the page asks for the key
    by_id(browser, "api-key").send_keys(KEY, Keys.TAB)
    wait.until(lambda d: css(d, "#adapters li"))
    css(browser, "#adapters li")[0].click()
    wait.until(lambda d: by_id(d, "current").text == "keyed")
    for link, query in (("download-file", ""), ("download-peft", "?format=peft")):
        by_id(browser, link).click()
        wait.until(lambda d: by_id(d, "download-status").text.startswith("saved "))
        name = by_id(browser, "download-status").text.removeprefix("saved ")
        path = downloads / name
        wait.until(lambda d: path.exists() and not list(downloads.glob("*.crdownload")))
        want = httpx.get(f"{keyed_url}/v1/adapters/{made['id']}/download{query}", headers=headers)
        assert unpacked(path.read_bytes()) == unpacked(want.content)
        assert browser.current_url.rstrip("/") == keyed_url  # still the page, not a JSON 401
        assert by_id(browser, "current").text == "keyed"
    assert sorted(p.suffix for p in downloads.iterdir()) == [".safetensors", ".zip"]
