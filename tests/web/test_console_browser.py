"""The console in a real browser: Debian's headless Chromium, driven through chromium-driver by Selenium.

`alertbridge serve` runs as its own process against a recording case system
that refuses some creates (a real 400 with an errors map, so those cases get
stuck with their create dead-lettered). The browser signs in, filters cases,
opens one, replays a dead letter once the case system accepts it again and
sees it succeed, and no page logs a console error. Each page is
photographed; `ALERTBRIDGE_UPDATE_SCREENSHOTS=1` copies the photos to
docs/img/ for the docs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from conftest import unavailable
from support.procs import free_port, procs, wait_until  # noqa: F401 - procs is a fixture
from support.recorder import Recorder, ServerThread

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
TOKEN, HOOK = "browser-admin-token", "browser-hook-token"


def require_browser():
    if not (CHROMIUM.exists() and DRIVER.exists()):
        unavailable("chromium and chromium-driver are not installed (scripts/ensure-chromium.sh installs them)")


class RefusingCases:
    """The recording case system, refusing to create tickets whose summary mentions `refuse` while `refusing` is set."""

    def __init__(self, refuse: str):
        self.recorder = Recorder()
        self.refuse = refuse
        self.refusing = True
        self.inner = self.recorder.app()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/tickets" and self.refusing:
            request = Request(scope, receive)
            body = await request.json()
            if self.refuse in body["summary"]:
                answer = JSONResponse({"errorMessages": [], "errors": {"project": "project 'SOC' does not accept this issue type"}},
                                      status_code=400)
                await answer(scope, receive, send)
                return
            receive = _replay_body(json.dumps(body).encode())
        await self.inner(scope, receive, send)


def _replay_body(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


ALERTS = [
    {"id": "b1", "title": "Brute force against VPN", "severity": "high", "hosts": ["vpn-1"], "category": "credential"},
    {"id": "b2", "title": "Brute force against VPN", "severity": "high", "hosts": ["vpn-2"], "category": "credential"},
    {"id": "b3", "title": "Brute force against OWA", "severity": "medium", "hosts": ["mail-1"], "category": "credential"},
    {"id": "m1", "title": "Malware quarantined", "severity": "critical", "hosts": ["ws-042"], "category": "malware"},
    {"id": "m2", "title": "Malware beacon to known C2", "severity": "critical", "hosts": ["ws-017"], "category": "malware"},
    {"id": "p1", "title": "Port scan from inside", "severity": "low", "hosts": ["ws-003"], "category": "recon"},
    {"id": "i1", "title": "Impossible travel sign-in", "severity": "high", "users": ["alice"], "category": "identity"},
]


@pytest.fixture
def browser(tmp_path):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000",
                     "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER), log_output=str(tmp_path / "chromedriver.log")), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(tmp_path, procs):  # noqa: F811 - the procs fixture
    cases = RefusingCases(refuse="Malware")
    with ServerThread(cases) as cases_url:
        port = free_port()
        config = tmp_path / "console.yaml"
        config.write_text(json.dumps({
            "database": f"sqlite:///{tmp_path / 'console.db'}", "listen": f"127.0.0.1:{port}", "admin_token": TOKEN, "workers": 2,
            "sources": {"edr": {"type": "generic", "tenant": "contoso", "auth": {"mode": "bearer", "token": HOOK}}},
            "sinks": {"cases": {"type": "http", "url": cases_url}},
            "routes": [{"name": "edr-to-soc", "sink": "cases", "project": "SOC", "group_by": "{{ alert.title }}"}],
        }))
        hub = procs.start("hub", "serve", "--config", str(config))
        base = f"http://127.0.0.1:{port}"
        with httpx2.Client(base_url=base, timeout=5) as client:
            wait_until(lambda: _healthy(client), timeout=30, what="the hub to answer /healthz", group=procs)
            for alert in ALERTS:
                assert client.post("/hooks/edr", json=alert, headers={"Authorization": f"Bearer {HOOK}"}).status_code == 202
            admin = {"Authorization": f"Bearer {TOKEN}"}
            wait_until(lambda: client.get("/api/stats", headers=admin).json()["jobs_dead"] == 2, timeout=30,
                       what="the two malware creates to be dead-lettered", group=procs)
            wait_until(lambda: len(cases.recorder.tickets) == 4, timeout=30, what="the other tickets", group=procs)
        assert hub.alive()
        yield base, cases


def _healthy(client: httpx2.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx2.TransportError:
        return False


def test_sign_in_filter_open_replay_and_no_console_errors(browser, console, tmp_path):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, cases = console
    shots = tmp_path / "shots"
    shots.mkdir()

    def shoot(name: str) -> None:
        """Photograph the whole page, not only the window (Chrome DevTools: capture beyond the viewport)."""
        size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": 1400, "height": min(size["height"], 4000), "scale": 1}
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        (shots / f"console-{name}.png").write_bytes(base64.b64decode(shot["data"]))

    def text() -> str:
        return browser.find_element(By.TAG_NAME, "main").text

    def wait(check, what: str, seconds: float = 15):
        """Wait until `check(browser)` holds (WebDriver polls it), naming what did not happen when it never does."""
        return WebDriverWait(browser, seconds, ignored_exceptions=[NoSuchElementException, StaleElementReferenceException]).until(
            check, f"timed out waiting for {what}")

    def showing(heading: str):
        """Tell whether the page is fully loaded and is the one whose <h1> starts with `heading`."""
        return lambda b: (b.execute_script("return document.readyState") == "complete"
                          and b.find_element(By.TAG_NAME, "h1").text.startswith(heading))

    def visit(path: str, heading: str) -> None:
        """Open a console page and wait for its own content (its heading), not for a page that happens to be there."""
        browser.get(f"{base}{path}")
        wait(showing(heading), f"{path} to show {heading!r}")

    def click_and_load(element, heading: str) -> None:
        """Click something that loads a page, and wait until the new page and its content are there (a click does not wait)."""
        old = browser.find_element(By.TAG_NAME, "html")
        element.click()
        wait(lambda b: gone(old), f"the click to leave the page for {heading!r}")
        wait(showing(heading), f"the page {heading!r}")

    def gone(element) -> bool:
        """Tell whether `element` belongs to a page the browser has left."""
        try:
            element.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:  # Chromium may name a node of the left document this way instead of "stale"
            if "does not belong to the document" in exc.msg:
                return True
            raise

    def after_reload(check) -> bool:
        browser.get(browser.current_url)  # a fresh load: no element of the previous page is left to go stale
        return check()

    visit("/ui/cases", "Sign in to the console")  # the console sends a stranger to its login page
    assert "/ui/login" in browser.current_url
    shoot("login")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    click_and_load(browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"), "Cases")
    assert browser.current_url.endswith("/ui/cases") and "6 matching" in text()  # seven alerts, two of them one case
    assert "2 stuck case(s) need attention" in text()

    visit("/ui", "Overview")
    assert "2 stuck case(s)" in text() and "edr-to-soc" not in text()  # the overview shows sources, not routes
    shoot("overview")

    visit("/ui/cases", "Cases")
    Select(browser.find_element(By.ID, "filter-severity")).select_by_visible_text("high")  # submits itself (console.js)
    wait(lambda b: "severity=high" in b.current_url and showing("Cases 2 matching")(b), "the severity filter")
    rows = browser.find_elements(By.CSS_SELECTOR, "#cases tr td:nth-child(2) a")
    assert sorted(r.text for r in rows) == ["Brute force against VPN", "Impossible travel sign-in"]
    box = browser.find_element(By.ID, "filter-text")
    box.clear()
    box.send_keys("brute")
    box.submit()
    wait(lambda b: "text=brute" in b.current_url and showing("Cases 1 matching")(b), "the text filter")
    assert [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#cases tr td:nth-child(2) a")] == ["Brute force against VPN"]
    shoot("cases")

    visit("/ui/cases?state=stuck", "Cases 2 matching")
    stuck = browser.find_elements(By.CSS_SELECTOR, "#cases tr.stuck td:nth-child(2) a")
    assert sorted(r.text for r in stuck) == ["Malware beacon to known C2", "Malware quarantined"]
    assert "stuck: create_ticket dead-lettered" in text() and "does not accept this issue type" in text()
    click_and_load(next(r for r in stuck if r.text == "Malware quarantined"), "Case ")
    assert "Stuck:" in text() and "dead letter #" in text() and "Retry" in text()
    shoot("case-stuck")
    dead_letter = browser.find_element(By.PARTIAL_LINK_TEXT, "dead letter #").get_attribute("href")

    visit("/ui/dlq", "Dead letters")
    assert "create_ticket: 2" in text()
    shoot("dead-letters")

    cases.refusing = False  # the case system's project is fixed: a replay can now succeed
    visit(dead_letter.removeprefix(base), "Job ")
    assert browser.find_element(By.ID, "job-state").text == "dead" and "does not accept this issue type" in text()
    shoot("dead-letter")
    click_and_load(browser.find_element(By.XPATH, "//button[text()='Replay']"), "Job ")
    assert "replayed: the job is back in the queue" in text()
    wait(lambda b: after_reload(lambda: b.find_element(By.ID, "job-state").text == "done"), "the replayed job to succeed", 30)
    assert sum("Malware quarantined" in t["summary"] for t in cases.recorder.tickets.values()) == 1

    visit("/ui/cases?state=stuck", "Cases 1 matching")
    other = browser.find_element(By.CSS_SELECTOR, "#cases tr.stuck td:nth-child(2) a")
    assert other.text == "Malware beacon to known C2"
    click_and_load(other, "Case ")
    click_and_load(browser.find_element(By.XPATH, "//button[text()='Retry']"), "Case ")
    assert "replayed 1 dead job(s)" in text()
    wait(lambda b: after_reload(lambda: "Stuck:" not in text() and "CASE-" in text()), "the retried case to get its ticket", 30)
    shoot("case")

    visit("/ui/config", "Config")
    click_and_load(browser.find_element(By.XPATH, "//button[text()='Run check --live now']"), "Config")
    assert "check --live: OK" in text() and "by console:admin" in text()
    shoot("config")
    # Yesterday and today (UTC): the alerts of a moment ago are in it even just after midnight.
    days = browser.execute_script("var d = new Date(); var y = new Date(d - 864e5);"
                                  "return [y.toISOString().slice(0, 10), d.toISOString().slice(0, 10)]")
    visit(f"/ui/reports?period=day&from={days[0]}&to={days[1]}", "Report ")
    assert "7\nalerts" in text() and "Malware quarantined" in text()
    shoot("reports")
    assert TOKEN not in browser.page_source

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    if os.environ.get("ALERTBRIDGE_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, DOCS_IMG / shot.name)
    assert len(list(shots.iterdir())) == 9
