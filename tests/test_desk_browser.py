"""The desk in a real headless Chromium (Selenium) against `sentinel desk serve` on the embedded
PostgreSQL and broker: sign in, edit and approve a draft, find it on `chat.outbound`; customer text
carrying <script> and onerror= renders as inert text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from contextlib import contextmanager

import pytest

from agents.desk import store
from infra.db import make_engine
from infra.embedded import free_port
from infra.harness import read_topic, start_services, wait_until
from tests.helpers import sweep_outbox
from infra.settings import PROJECT_ROOT
from tests.test_desk_api import HOSTILE, add_draft

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextmanager
def desk_server(services, folder):
    """`sentinel desk serve` in its own process on the given services; yields its URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": services.database_url, "KAFKA_BOOTSTRAP": services.bootstrap,
           "SENTINEL_DESK_PORT": str(port), "SENTINEL_STATE_DIR": str(folder / "state")}
    log = open(folder / "desk.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "desk", "serve"], env=env, cwd=PROJECT_ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (folder / "desk.log").read_text()
        try:
            with urllib.request.urlopen(f"{url}/login", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout=60, interval=0.3, message="desk serving")
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


@contextmanager
def chromium():
    """Debian's headless Chromium through its chromedriver (skips where they are not installed)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make system-deps installs them)")
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager must not reach for the internet
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations are reported there
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """Services, a user, three drafts and the desk in its own process; yields (url, services, engine)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make system-deps installs them)")
    folder = tmp_path_factory.mktemp("desk-browser")
    services = start_services(folder)
    engine = make_engine(services.database_url)
    store.add_user(engine, "ann", "ann-password-1", "agent")
    add_draft(engine, "web-1", "conv-web", text_="My new card has not arrived yet.")
    add_draft(engine, "web-xss", "conv-xss", text_=f"Hello {HOSTILE}", draft=f"Dear customer {HOSTILE}")
    add_draft(engine, "web-3", "conv-3", text_="How do I top up by bank transfer?")
    try:
        with desk_server(services, folder) as url:
            yield url, services, engine
    finally:
        engine.dispose()
        services.broker.stop()
        services.postgres.stop()


@pytest.fixture(scope="module")
def browser(desk):
    with chromium() as driver:
        yield driver


def card(driver, message_id: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'article[data-message-id="{message_id}"]')


def signed_in(browser, url: str) -> None:
    """On the review queue, signing in first when the browser is not (a test run alone)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{url}/drafts")
    if browser.current_url.endswith("/login"):
        browser.find_element(By.NAME, "username").send_keys("ann")
        browser.find_element(By.NAME, "password").send_keys("ann-password-1")
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/drafts"))


def test_sign_in_edit_and_approve_a_draft(desk, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, services, engine = desk
    browser.get(f"{url}/drafts")
    assert browser.current_url.endswith("/login")
    browser.find_element(By.NAME, "username").send_keys("ann")
    browser.find_element(By.NAME, "password").send_keys("wrong-password")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(browser, 10).until(lambda d: "Wrong username or password" in d.page_source)
    browser.find_element(By.NAME, "username").send_keys("ann")
    browser.find_element(By.NAME, "password").send_keys("ann-password-1")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/drafts"))

    if os.environ.get("SENTINEL_DESK_SCREENSHOT"):  # the README's picture of the review queue
        browser.save_screenshot(os.environ["SENTINEL_DESK_SCREENSHOT"])
    draft = card(browser, "web-1")
    assert "My new card has not arrived yet." in draft.find_element(By.CSS_SELECTOR, "blockquote").text
    reply = draft.find_element(By.NAME, "text")
    reply.clear()
    reply.send_keys("Your card was posted on Monday; it arrives within 3 working days.")
    draft.find_element(By.CSS_SELECTOR, "form.approve button").click()
    # swapped in place by htmx: a card read while it is swapped is stale, and read again
    from selenium.common.exceptions import StaleElementReferenceException

    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: "sent by ann" in card(d, "web-1").text)

    violations = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == []  # htmx and our script work within script-src 'self' and style-src 'self'
    assert sweep_outbox(engine, services.bootstrap) == 1  # the worker's sweep sends what the desk stored
    records = [r for r in read_topic(services.bootstrap, "chat.outbound", 1, timeout=20)
               if json.loads(r.value)["message_id"] == "web-1"]
    assert len(records) == 1 and records[0].key == b"conv-web"
    assert json.loads(records[0].value) == {
        "message_id": "web-1", "conversation_id": "conv-web", "sent_by": "ann", "auto": False, "edited": True,
        "text": "Your card was posted on Monday; it arrives within 3 working days."}


def test_hostile_customer_text_renders_inert(desk, browser):
    from selenium.webdriver.common.by import By

    url, _, _ = desk
    signed_in(browser, url)
    for path in ("/drafts", "/conversations/conv-xss"):
        browser.get(url + path)
        hostile = card(browser, "web-xss") if path == "/drafts" else browser.find_element(By.CSS_SELECTOR, "main")
        assert "<script>window.__pwned=1</script>" in hostile.find_element(By.CSS_SELECTOR, "blockquote").text
        assert browser.execute_script("return window.__pwned === undefined")  # neither script nor handler ran
        assert browser.find_elements(By.CSS_SELECTOR, "main script, main img") == []
    browser.get(f"{url}/drafts")
    textarea = card(browser, "web-xss").find_element(By.NAME, "text")
    assert textarea.get_attribute("value") == f"Dear customer {HOSTILE}"  # editable as the text it is


def test_keyboard_moves_between_drafts_and_into_the_reply(desk, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = desk
    signed_in(browser, url)
    WebDriverWait(browser, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.draft.current"))
    cards = browser.find_elements(By.CSS_SELECTOR, "article.draft")
    assert len(cards) >= 2 and "current" in cards[0].get_attribute("class")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("j")
    assert "current" in cards[1].get_attribute("class") and "current" not in cards[0].get_attribute("class")
    body.send_keys("e")
    active = browser.switch_to.active_element
    assert active.tag_name == "textarea" and active == cards[1].find_element(By.NAME, "text")
    active.send_keys(Keys.ESCAPE)
    browser.find_element(By.TAG_NAME, "body").send_keys("k")
    assert "current" in cards[0].get_attribute("class")
