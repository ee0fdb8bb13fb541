"""Fixtures for the web UI's browser scenarios.

The scenarios drive Debian's Chromium (no browser download) through Playwright against a
running gateway named by MARTELO_URL. `tests/tests/browser.rs` starts a real cluster and a
real `martelo gateway`, creates the admin, and runs this suite; by hand:

    martelo dev                       # prints the admin password and the gateway URL
    MARTELO_URL=http://127.0.0.1:8080 MARTELO_ADMIN_USER=admin \
    MARTELO_ADMIN_PASSWORD=... python3 -m pytest tests/browser -q

Helpers talk to the HTTP API directly (urllib) only to set the stage (accounts, auctions);
everything a scenario checks goes through the page.
"""

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

PASSWORD = "correct horse battery staple"
CHROMIUM = os.environ.get("MARTELO_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(
    os.environ.get("MARTELO_SCREENSHOTS", Path(__file__).resolve().parents[2] / "docs" / "img")
)
# A fixed locale and zone so money and times read the same on every machine.
LOCALE = "en-GB"
TIMEZONE = "Europe/Lisbon"


def base_url() -> str:
    url = os.environ.get("MARTELO_URL")
    if not url:
        pytest.fail("set MARTELO_URL to a running gateway, e.g. http://127.0.0.1:8080")
    return url.rstrip("/")


def no_history_url() -> str:
    """A second gateway of the same cluster, started without the history database."""
    url = os.environ.get("MARTELO_URL_NO_HISTORY")
    if not url:
        pytest.fail("set MARTELO_URL_NO_HISTORY to a gateway running without --postgres")
    return url.rstrip("/")


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def http(method: str, path: str, body=None, token=None, key=None):
    """One API call: (status, JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url() + path, data=data, method=method)
    request.add_header("accept", "application/json")
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    if key:
        request.add_header("idempotency-key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return answer.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, (json.loads(raw) if raw else None)


def must_sign_up(username: str, roles=("bidder",), display_name=None) -> int:
    status, answer = http(
        "POST",
        "/v1/accounts",
        {
            "username": username,
            "display_name": display_name or username.capitalize(),
            "password": PASSWORD,
            "roles": list(roles),
        },
    )
    assert status == 201, f"sign-up of {username}: {status} {answer}"
    return answer["id"]


def must_token(username: str, password: str = PASSWORD) -> str:
    status, answer = http("POST", "/v1/sessions", {"username": username, "password": password})
    assert status in (200, 201), f"sign-in of {username}: {status} {answer}"
    return answer["access_token"]


def server_now_us() -> int:
    status, answer = http("GET", "/v1/time")
    assert status == 200, answer
    return answer["now_us"]


def must_create_auction(
    token: str,
    title: str,
    ends_in_secs: int,
    starting_price: int = 1000,
    step: int = 100,
    soft_close=None,
    buy_now_price=None,
) -> int:
    now = server_now_us()
    body = {
        "title": title,
        "description": f"{title}, listed by the browser tests.",
        "currency": "EUR",
        "starting_price": starting_price,
        "increment": {"fixed": step},
        "start_us": now - 1_000_000,
        "end_us": now + ends_in_secs * 1_000_000,
        "soft_close": soft_close,
        "buy_now_price": buy_now_price,
    }
    status, answer = http("POST", "/v1/auctions", body, token=token, key=unique("auction-"))
    assert status == 201, f"create {title}: {status} {answer}"
    return answer["auction"]


def sign_in(page: Page, username: str, password: str = PASSWORD, base: str | None = None):
    """Signs in through the form (of the gateway at `base`, by default the suite's) and waits
    until the header names the user."""
    page.goto(f"{base or base_url()}/signin")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form button[type=submit]")
    expect(page.locator("#sign-out")).to_be_visible()


def screenshot(page: Page, name: str, full_page: bool = False):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # the page from its top, whatever was clicked last
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set MARTELO_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    """Makes pages, each in its own context (its own cookies: a separate person)."""
    contexts = []

    def make(width: int = 1280, height: int = 860) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            locale=LOCALE,
            timezone_id=TIMEZONE,
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.js_errors = errors
        return page

    yield make
    for context in contexts:
        for page in context.pages:
            assert not page.js_errors, f"script errors on {page.url}: {page.js_errors}"
        context.close()


@pytest.fixture(scope="session")
def seller():
    """A seller account and its API token (for setting the stage)."""
    name = unique("seller")
    user_id = must_sign_up(name, roles=("seller",), display_name="Sally Seller")
    return {"username": name, "id": user_id, "token": must_token(name)}


@pytest.fixture(scope="session")
def admin_credentials():
    username = os.environ.get("MARTELO_ADMIN_USER")
    password = os.environ.get("MARTELO_ADMIN_PASSWORD")
    if not username or not password:
        pytest.fail("set MARTELO_ADMIN_USER and MARTELO_ADMIN_PASSWORD (an admin account)")
    return username, password


def restart_gateway():
    """Asks the Rust harness to kill the gateway and start it again (same port and keys).

    The harness (tests/tests/browser.rs) watches MARTELO_CONTROL_DIR for the file
    `restart-gateway` and answers with `gateway-restarted` once /healthz answers again.
    """
    control = os.environ.get("MARTELO_CONTROL_DIR")
    if not control:
        pytest.skip("restarting the gateway needs the Rust harness (MARTELO_CONTROL_DIR)")
    done = Path(control) / "gateway-restarted"
    done.unlink(missing_ok=True)
    (Path(control) / "restart-gateway").touch()
    deadline = time.monotonic() + 60
    while not done.exists():
        assert time.monotonic() < deadline, "the harness did not restart the gateway within 60 s"
        time.sleep(0.1)
    done.unlink()
