"""The desk in a real headless Chromium (Selenium) against `sentinel desk serve` on the embedded
PostgreSQL and broker: sign in, edit and approve a draft, find it on `chat.outbound`; customer text
carrying <script> and onerror= renders as inert text; the queue's order, counts, filters and claims, driven
from the keyboard alone; an alert's evidence as people read it; and axe-core on every page.

With SENTINEL_DESK_SCREENSHOTS=docs/screenshots set, the tests save the README's pictures of the pages there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from agents.desk import store
from infra.embedded import free_port
from infra.harness import read_topic, wait_until
from infra.settings import PROJECT_ROOT
from tests.helpers import (
    CHROMEDRIVER,
    CHROMIUM,
    browser_desk_services,
    require_chromium,
    sweep_outbox,
)
from tests.test_desk_api import HOSTILE, add_draft, add_spike_alert

pytestmark = pytest.mark.integration

AXE_JS = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
BOB = store.User(0, "bob", "agent")  # another reviewer, acting through the store as his desk would


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
    require_chromium()
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
    with browser_desk_services(tmp_path_factory, "desk-browser") as (folder, services, engine, _):
        add_draft(engine, "web-1", "conv-web", text_="My new card has not arrived yet.")
        add_draft(engine, "web-xss", "conv-xss", text_=f"Hello {HOSTILE}", draft=f"Dear customer {HOSTILE}")
        add_draft(engine, "web-3", "conv-3", text_="How do I top up by bank transfer?")
        # the queue's later tests: an escalated draft that waited less than the others, one on another channel
        # that someone else is editing, and a spike alert with its stories
        add_draft(engine, "web-esc", "conv-esc", text_="Someone took my card!", escalate=True,
                  intent="lost_or_stolen_card", score=0.99)
        add_draft(engine, "web-app", "conv-app", text_="Is there a fee for top ups?", intent="top_up_fee")
        with engine.begin() as conn:
            conn.execute(text("update reply_drafts set created_at = now() - interval '40 minutes' "
                              "where message_id <> 'web-esc'"))
            conn.execute(text("update chat_messages set channel = 'app', customer_id = 'cust-42' where id = 'web-app'"))
            conn.execute(text("update chat_messages set channel = 'web' where id <> 'web-app'"))
        store.claim(engine, "web-app", BOB)
        add_spike_alert(engine, "spike:web", "acme")
        with desk_server(services, folder) as url:
            yield url, services, engine


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

    draft = card(browser, "web-1")
    assert "My new card has not arrived yet." in draft.find_element(By.CSS_SELECTOR, "blockquote").text
    reply = draft.find_element(By.NAME, "text")
    reply.clear()
    reply.send_keys("Your card was posted on Monday; it arrives within 3 working days.")
    draft.find_element(By.CSS_SELECTOR, "button.approve").click()
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


# -- helpers for the queue, the alerts and the accessibility checks -------------------------------------------
def screenshot(browser, name: str) -> None:
    """Save the page for the README when SENTINEL_DESK_SCREENSHOTS names a folder (docs/screenshots)."""
    folder = os.environ.get("SENTINEL_DESK_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        size = browser.get_window_size()
        browser.set_window_size(1100, 1000)  # small pictures: the top of each page
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(os.path.join(folder, f"{name}.png"))
        browser.set_window_size(size["width"], size["height"])


def serious_accessibility_violations(browser) -> list[dict]:
    """axe-core (npm, node_modules/) run on the page as it is: its serious and critical violations."""
    assert AXE_JS.is_file(), f"{AXE_JS} is missing: run `npm ci` in the project (make test does)"
    browser.set_script_timeout(60)
    browser.execute_script(AXE_JS.read_text(encoding="utf-8"))
    found = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                                  nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))))
          .catch(e => done([{id: "axe-failed", impact: "critical", help: String(e), nodes: []}]));""")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def wait_for(browser, predicate, timeout: float = 15):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(predicate)


def keys(browser, *sequence) -> None:
    """Keys pressed on whatever has the focus, as a person at the keyboard would."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(*sequence).perform()


def chord(browser, modifier, key) -> None:
    """A key pressed while a modifier is held (Ctrl+A, Ctrl+Enter)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).key_down(modifier).send_keys(key).key_up(modifier).perform()


def active(browser):
    return browser.switch_to.active_element


def test_the_queue_puts_escalations_first_counts_tabs_and_filters(desk, browser):
    from selenium.webdriver.common.by import By

    url, _, _ = desk
    signed_in(browser, url)
    order = [c.get_attribute("data-message-id") for c in browser.find_elements(By.CSS_SELECTOR, "article.draft")]
    assert order[0] == "web-esc"  # escalated first, though it waited the least
    tabs = {a.text.split()[0]: a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav.tabs a")}
    assert tabs["pending"] == f"pending ({len(order)})" and tabs["sent"].startswith("sent (")
    assert "waiting 40 min" in card(browser, "web-3").text  # the server's text; desk.js keeps it current
    screenshot(browser, "queue")
    # filters: a channel from the select, then a customer id typed in the search box and Enter
    browser.get(f"{url}/drafts?channel=app")
    assert [c.get_attribute("data-message-id") for c in browser.find_elements(By.CSS_SELECTOR, "article.draft")] == [
        "web-app"]
    browser.get(f"{url}/drafts")
    search = browser.find_element(By.ID, "filter-q")
    search.send_keys("CUST-4\n")
    wait_for(browser, lambda d: "q=CUST-4" in d.current_url)
    assert [c.get_attribute("data-message-id") for c in browser.find_elements(By.CSS_SELECTOR, "article.draft")] == [
        "web-app"]
    assert browser.find_element(By.CSS_SELECTOR, 'nav.tabs a[aria-current="page"]').text == "pending (1)"


def test_claims_and_decisions_from_the_keyboard_alone(desk, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, services, engine = desk
    signed_in(browser, url)
    browser.get(f"{url}/drafts?q=conv-app")
    wait_for(browser, lambda d: active(d).get_attribute("data-message-id") == "web-app")  # the card has the focus
    assert "Being edited by bob" in card(browser, "web-app").text
    assert browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle") != "none"
    screenshot(browser, "claim")
    keys(browser, "a")  # approve while bob edits: refused, said so, nothing sent
    wait_for(browser, lambda d: "bob is editing this draft" in card(d, "web-app").text)
    assert store.get_draft(engine, "web-app").status == "pending"
    for _ in range(12):  # Tab to the take-over button
        if "take-over" in (active(browser).get_attribute("class") or ""):
            break
        keys(browser, Keys.TAB)
    assert active(browser).text == "Take over from bob"
    focus_ring = "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]"
    assert browser.execute_script(focus_ring) == ["solid", "3px"]  # the desk's own visible focus, not a faint default
    keys(browser, Keys.ENTER)
    wait_for(browser, lambda d: "You are editing this draft" in card(d, "web-app").text)
    assert store.get_draft(engine, "web-app").editor == "ann"
    with pytest.raises(store.DecisionError, match="ann is editing"):  # bob's page cannot overwrite it now
        store.approve(engine, "web-app", BOB, "Bob's text", version=0)
    keys(browser, "e")  # the card is still the current one
    assert active(browser).tag_name == "textarea"
    chord(browser, Keys.CONTROL, "a")
    keys(browser, "Top ups by card are free; by bank transfer too.")
    chord(browser, Keys.CONTROL, Keys.ENTER)
    wait_for(browser, lambda d: "sent by ann" in card(d, "web-app").text)
    assert store.get_draft(engine, "web-app").sent_text == "Top ups by card are free; by bank transfer too."
    browser.get(f"{url}/drafts?status=sent&q=conv-app")  # the sent tab shows the text that was sent
    sent = card(browser, "web-app")
    assert "Text sent (edited from the draft):" in sent.text and "by bank transfer too." in sent.text
    screenshot(browser, "sent")


def test_alert_evidence_reads_as_a_sentence_a_table_and_a_chart(desk, browser):
    from selenium.webdriver.common.by import By

    url, _, _ = desk
    signed_in(browser, url)
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})  # the reader's zone
    try:
        browser.get(f"{url}/alerts")
        alert = browser.find_element(By.CSS_SELECTOR, "article.alert")
        assert "14 of 18 stories negative (78%) in the 15 min" in alert.find_element(By.CLASS_NAME, "statistics").text
        rows = alert.find_elements(By.CSS_SELECTOR, "table.stories tbody tr")
        assert len(rows) == 2
        hostile, plain = (r.find_elements(By.TAG_NAME, "td") for r in rows)
        assert "<script>window.__pwned=1</script>" in hostile[1].text and hostile[1].find_elements(By.TAG_NAME, "a") == []
        assert plain[1].find_element(By.TAG_NAME, "a").get_attribute("href") == 'https://news.example/a?x=1&y=%222%22'
        assert hostile[4].text == "negative (-0.80)" and hostile[3].text == "5"
        # 11:50 UTC is 20:50 in Tokyo, and months ago by now
        wait_for(browser, lambda d: "8:50 PM" in hostile[0].text and "ago" in hostile[0].text)
        assert browser.execute_script("return window.__pwned === undefined")
        # every label of the chart lies inside it, in a readable size
        boxes = browser.execute_script("""
            const svg = document.querySelector("figure.chart svg"), frame = svg.getBoundingClientRect();
            return Array.from(svg.querySelectorAll("text")).map(t => { const b = t.getBoundingClientRect();
              return {text: t.textContent, size: parseFloat(getComputedStyle(t).fontSize),
                      inside: b.left >= frame.left && b.right <= frame.right && b.top >= frame.top
                              && b.bottom <= frame.bottom}; });""")
        assert len(boxes) >= 10 and {"time (UTC)", "mean sentiment (line)"} <= {b["text"] for b in boxes}
        assert [b["text"] for b in boxes if not b["inside"] or b["size"] < 11] == []
        screenshot(browser, "alerts")
    finally:
        browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})


def test_every_page_has_no_serious_accessibility_violations(desk, browser):
    url, _, _ = desk
    signed_in(browser, url)
    found = {}
    for path in ("/drafts", "/drafts?status=sent", "/escalations", "/conversations/conv-web", "/alerts", "/login"):
        browser.get(url + path)
        found[path] = serious_accessibility_violations(browser)
        if path in ("/conversations/conv-web", "/login"):
            screenshot(browser, path.split("/")[1])
    # the error page: a form whose token has expired, posted without htmx
    signed_in(browser, url)
    browser.execute_script("""const f = document.querySelector("form.decide");
        f.querySelector("[name=csrf_token]").value = "expired"; f.submit();""")
    wait_for(browser, lambda d: "The form has expired" in d.page_source)
    found["error"] = serious_accessibility_violations(browser)
    screenshot(browser, "error")
    assert {page: v for page, v in found.items() if v} == {}
