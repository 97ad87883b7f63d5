"""The company pages and watchlists in a real headless Chromium against `sentinel desk serve` on the embedded
PostgreSQL and broker: the watched company first on /companies, its page reached from there, a hostile headline
as inert text, and axe-core on /companies, a company page and /watchlists (no serious or critical violations).

With SENTINEL_DESK_SCREENSHOTS=docs/screenshots set, the test saves the README's pictures of these pages there."""

from __future__ import annotations

import pytest

from agents.desk import watchlists
from tests.helpers import browser_desk_services
from tests.test_desk_api import HOSTILE
from tests.test_desk_browser import (
    chromium,
    desk_server,
    screenshot,
    serious_accessibility_violations,
    signed_in,
    wait_for,
)
from tests.test_desk_companies import add_alert, add_article

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """Services, a user, two companies with a day of news, an alert and a watchlist; the desk in its own process."""
    with browser_desk_services(tmp_path_factory, "desk-companies") as (folder, services, engine, ann):
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "insert into companies (id, name, tickers, source) values "
                "('ACME', 'Acme Corp', '[{\"symbol\": \"ACME\", \"exchange\": \"NYSE\"}]', 'user'), "
                "('BETA', 'Beta Bank', '[]', 'user')")
        for i in range(12):  # a day of Acme news turning negative, a calm Beta
            add_article(engine, f"acme-{i}", "ACME", 23 - 2 * i, i >= 8, title=f"Acme update {i}",
                        url=f"https://news.example/acme/{i}", source=("Wire", "Daily", "Ledger")[i % 3])
            add_article(engine, f"beta-{i}", "BETA", 22 - 2 * i, False, title=f"Beta notes {i}")  # the latest news
        for i in range(6):  # the week before: mostly calm
            add_article(engine, f"acme-old-{i}", "ACME", 30 + 24 * i, i == 0, title=f"Acme earlier {i}")
        add_article(engine, "acme-hostile", "ACME", 0.1, True, title=HOSTILE, url="javascript:window.__pwned=3")
        add_alert(engine, "spike:acme-web", "company:ACME")
        watched = watchlists.create(engine, ann, "My companies", shared=False)
        watchlists.add_company(engine, ann, watched, "ACME")
        with desk_server(services, folder) as url:
            yield url, engine


def test_companies_and_a_company_page_read_well_and_pass_axe(desk):
    from selenium.webdriver.common.by import By

    url, _ = desk
    with chromium() as browser:
        signed_in(browser, url)
        browser.find_element(By.LINK_TEXT, "Companies").click()  # the nav link
        wait_for(browser, lambda d: d.current_url.endswith("/companies"))
        rows = browser.find_elements(By.CSS_SELECTOR, "table.companies tbody tr")
        assert [r.find_element(By.TAG_NAME, "th").text.split()[0] for r in rows] == ["Acme", "Beta"]
        assert "watched" in rows[0].text and "(5 of 13)" in rows[0].text  # watched first; 5 of 13 negative today
        violations = {"/companies": serious_accessibility_violations(browser)}
        screenshot(browser, "companies")
        rows[0].find_element(By.LINK_TEXT, "Acme Corp").click()
        wait_for(browser, lambda d: d.current_url.endswith("/companies/ACME"))
        table = browser.find_element(By.CSS_SELECTOR, "table.stories")
        first = table.find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")
        assert "<script>window.__pwned=1</script>" in first[1].text and first[1].find_elements(By.TAG_NAME, "a") == []
        assert first[4].text == "negative (-0.80)"
        assert browser.execute_script("return window.__pwned === undefined")
        assert browser.find_elements(By.CSS_SELECTOR, "figure.chart svg rect.bar")
        assert "Remove from My companies" in browser.find_element(By.CSS_SELECTOR, ".watchlist-actions").text
        violations["/companies/ACME"] = serious_accessibility_violations(browser)
        screenshot(browser, "company")
        browser.get(f"{url}/watchlists")
        violations["/watchlists"] = serious_accessibility_violations(browser)
        screenshot(browser, "watchlists")
        browser.get(f"{url}/alerts?watchlist=0")  # the error page for a watchlist that is not there
        violations["/alerts?watchlist=0"] = serious_accessibility_violations(browser)
    assert {page: v for page, v in violations.items() if v} == {}
