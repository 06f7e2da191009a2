"""The web page of `t2l serve` in a real headless browser (Debian's chromium and chromium-driver, which .ci/run
installs): describe a task, make the adapter, send a message, read both answers from the page."""

import shutil

import httpx
import openai
import pytest

from t2l_cli.server.api import create_app
from t2l_cli.server.background import serving
from t2l_cli.server.service import ServeSettings, Service

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                 reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                        "chromium-driver; .ci/run installs them)")]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def url(trained_hypernet, tiny_base_dir):
    service = Service(ServeSettings(base=str(tiny_base_dir), hypernet=str(trained_hypernet[0])))
    with serving(create_app(service)) as base_url:
        yield base_url


def test_describe_make_and_chat_beside_the_base(browser, url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(url)
    wait.until(lambda d: "base model:" in d.find_element(By.ID, "base-name").text)
    browser.find_element(By.ID, "description").send_keys("answer in upper case")
    browser.find_element(By.ID, "make").click()
    wait.until(lambda d: d.find_element(By.ID, "details-description").text == "answer in upper case")
    adapter_id = httpx.get(f"{url}/v1/adapters").json()["data"][0]["id"]
    assert browser.find_element(By.ID, "current").text == adapter_id[:8]
    assert browser.find_element(By.ID, "download-file").get_attribute("href").endswith(f"/{adapter_id}/download")
    assert "answer in upper case" in browser.find_element(By.ID, "card").get_attribute("textContent")
    for field, value in (("temperature", "0"), ("max-tokens", "10")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "message").send_keys("hello")
    browser.find_element(By.ID, "send").click()
    done = "#{} .answer[data-done='1']"
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, done.format("base-log"))
               and d.find_elements(By.CSS_SELECTOR, done.format("adapter-log")))
    shown = {side: browser.find_element(By.CSS_SELECTOR, done.format(f"{side}-log")).get_attribute("textContent")
             for side in ("base", "adapter")}
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    for side, model in (("base", "base"), ("adapter", adapter_id)):
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}],
                                               temperature=0, max_tokens=10)
        assert shown[side] == reply.choices[0].message.content
    assert shown["base"] != shown["adapter"]
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#base-log .user")] == ["hello"]


def test_the_search_box_finds_adapters_and_shows_their_card(browser, url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for description in ("answer in upper case", "answer in small letters"):
        httpx.post(f"{url}/v1/adapters", json={"description": description}, timeout=60).raise_for_status()
    wait = WebDriverWait(browser, 30)
    browser.get(url)
    items = lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#adapters li")]  # noqa: E731
    wait.until(lambda d: len(items(d)) == 2)
    browser.find_element(By.ID, "search").send_keys("small")
    wait.until(lambda d: len(items(d)) == 1)
    assert "answer in small letters" in items(browser)[0]
    browser.find_element(By.CSS_SELECTOR, "#adapters li").click()
    wait.until(lambda d: d.find_element(By.ID, "details-description").text == "answer in small letters")
    assert browser.find_element(By.ID, "scores").text == "no scores yet (t2l eval)"
