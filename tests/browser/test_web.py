"""The web UI in a real Chromium against a real cluster and gateway.

Scenarios (issue #14): sign-up and sign-in errors and an expired session; a seller creates,
edits and cancels through the form; two bidders bid against each other live while a third
person watches, with soft close extending the end; reload and a dropped socket resume with
no missing or duplicated history rows; an admin suspends a bidder whose bids are then
refused; an auction closes by itself and shows the winner. Screenshots go to docs/img/.
"""

import re
import time

from playwright.sync_api import Page, expect

from conftest import (
    PASSWORD,
    base_url,
    http,
    must_create_auction,
    must_sign_up,
    must_token,
    restart_gateway,
    screenshot,
    sign_in,
    unique,
)

# "Each sees the other's bid within 1 s without reloading" (issue #14).
LIVE_MS = 1_000


def history(page: Page):
    """The bid history as (bid id, amount text), newest first."""
    return page.eval_on_selector_all(
        "#history li",
        "rows => rows.map(row => [row.dataset.bid, row.querySelector('.amount').textContent])",
    )


def bid(page: Page, amount: str, max_amount: str | None = None):
    page.fill("#bid-amount", amount)
    if max_amount is not None:
        page.click("#bid-form summary")
        page.fill("#bid-max", max_amount)
    page.click("#bid-button")


def test_sign_up_and_sign_in_give_clear_messages(new_page):
    page = new_page()
    page.goto(f"{base_url()}/signup")
    page.fill("#username", "x")
    page.fill("#display_name", "Xavier")
    page.fill("#password", "short")
    page.click("form button[type=submit]")
    expect(page.locator("#username-error")).to_have_text("A username has 3 to 32 characters.")
    expect(page.locator("#password-error")).to_have_text("The password needs at least 8 characters.")
    expect(page.locator("#username")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "signup-errors")

    name = unique("ana")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("#nav .who")).to_contain_text("Xavier")

    # The same username again: the server's username_taken, in plain words.
    page.click("#sign-out")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.goto(f"{base_url()}/signup")
    page.fill("#username", name.upper())
    page.fill("#display_name", "Impostor")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("#form-error")).to_have_text("That username is taken. Choose another one.")

    # A wrong password.
    page.goto(f"{base_url()}/signin")
    page.fill("#username", name)
    page.fill("#password", "not the password")
    page.click("form button[type=submit]")
    expect(page.locator("#form-error")).to_have_text("The username or the password is wrong.")
    screenshot(page, "signin-wrong-password")

    # The right one; the session lives in HttpOnly cookies, nothing in localStorage.
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("#sign-out")).to_be_visible()
    assert page.evaluate("localStorage.length") == 0
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies["martelo_access"]["httpOnly"] and cookies["martelo_refresh"]["httpOnly"]
    assert page.evaluate("document.cookie").find("martelo_access") == -1

    # The access cookie gone (expired): the page refreshes the session by itself.
    page.context.clear_cookies(name="martelo_access")
    page.reload()
    expect(page.locator("#nav .who")).to_contain_text("Xavier")

    # Access and refresh gone: the session has expired, and the page says so.
    page.context.clear_cookies(name="martelo_access")
    page.context.clear_cookies(name="martelo_refresh")
    page.reload()
    expect(page.locator(".toast")).to_contain_text("Your session has expired. Sign in again.")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def test_a_seller_creates_edits_and_cancels_through_the_form(new_page, seller):
    page = new_page()
    sign_in(page, seller["username"])
    page.get_by_role("link", name="Sell", exact=True).click()
    expect(page.locator("h1")).to_have_text("Sell something")
    title = unique("Brass lamp ")
    page.fill("#title", title)
    page.fill("#description", "A brass desk lamp, 1950s, working.")
    page.select_option("#currency", "EUR")
    page.fill("#starting_price", "12.5")
    page.check("#increment-fixed")
    page.fill("#increment_step", "0.50")
    page.fill("#reserve_price", "abc")
    page.click("#submit")
    expect(page.locator("#reserve_price-error")).to_have_text("Use digits and a decimal point only.")
    page.fill("#reserve_price", "20")
    page.fill("#buy_now_price", "80.00")
    screenshot(page, "sell-form", full_page=True)
    page.click("#submit")
    expect(page).to_have_url(re.compile(r"/auctions/\d+$"))
    expect(page.locator("#title")).to_have_text(title)
    expect(page.locator("#price")).to_have_text("€12.50")
    expect(page.locator("#price-label")).to_have_text("Starting price")
    expect(page.locator("#reserve")).to_have_text("Reserve not met")
    expect(page.locator("#buy-button")).to_be_hidden()  # the seller cannot buy their own
    auction_url = page.url

    # Edit before the first bid.
    page.click("#edit-link")
    expect(page.locator("#title")).to_have_value(title)
    page.fill("#title", title + " (edited)")
    page.fill("#reserve_price", "20")
    page.click("#submit")
    expect(page).to_have_url(auction_url)
    expect(page.locator("#title")).to_have_text(title + " (edited)")

    # Cancel: the server's verdict shows.
    page.fill("#cancel-reason", "Sold it elsewhere")
    page.click("#cancel-button")
    expect(page.locator("#verdict")).to_have_text("Cancelled: Sold it elsewhere")
    expect(page.locator("#bid-form")).to_have_count(0)


def test_two_bidders_race_live_and_a_watcher_sees_the_same_history(new_page, seller):
    soft_close = {"window_secs": 600, "mode": "add_to_end", "extension_secs": 30}
    auction = must_create_auction(seller["token"], unique("Race bike "), 300, soft_close=soft_close)
    url = f"{base_url()}/auctions/{auction}"
    names = [unique("alice"), unique("bruno")]
    ids = [must_sign_up(name) for name in names]
    alice, bruno, watcher = new_page(), new_page(), new_page()
    for page, name in zip((alice, bruno), names):
        sign_in(page, name)
    for page in (alice, bruno, watcher):
        page.goto(url)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        expect(page.locator("#price")).to_have_text("€10.00")
    expect(watcher.locator("#bid-card")).to_contain_text("Sign in to bid")

    # Alice bids; Bruno sees the price, and the end extended, without reloading.
    bid(alice, "10")
    expect(alice.locator("#bid-result")).to_have_text("Bid accepted: you are winning at €10.00.")
    expect(bruno.locator("#price")).to_have_text("€10.00", timeout=LIVE_MS)
    expect(bruno.locator("#leader")).to_have_text(f"Bidder #{ids[0]}", timeout=LIVE_MS)
    expect(bruno.locator("#extended")).to_have_text("Extended by 30s", timeout=LIVE_MS)
    expect(alice.locator("#standing")).to_have_text("You are winning.")

    # Bruno outbids her: Alice sees it and the outbid notice at once.
    bid(bruno, "11.00")
    expect(bruno.locator("#bid-result")).to_have_text("Bid accepted: you are winning at €11.00.")
    expect(alice.locator("#price")).to_have_text("€11.00", timeout=LIVE_MS)
    expect(alice.locator("#standing")).to_have_text("You were outbid.", timeout=LIVE_MS)
    expect(alice.locator(".toast.bad")).to_contain_text("You were outbid", timeout=LIVE_MS)

    # A bid under the minimum is refused with the engine's reason in plain words.
    bid(alice, "11.00")
    expect(alice.locator("#bid-result")).to_contain_text("below the minimum bid of €12.00")

    # Alice bids with a proxy maximum; Bruno's next bid is beaten by it at once.
    bid(alice, "12.00", max_amount="20.00")
    expect(alice.locator("#bid-result")).to_have_text("Bid accepted: you are winning at €12.00.")
    bid(bruno, "13.00")
    expect(bruno.locator("#bid-result")).to_contain_text("another bidder's maximum is higher")
    expect(bruno.locator("#standing")).to_have_text("You were outbid.")
    expect(alice.locator("#standing")).to_have_text("You are winning.", timeout=LIVE_MS)

    # A double click is one intent: one bid, whatever the clicks. Bruno's 25.00 beats Alice's
    # maximum; the engine prices a winning bid at least at its own amount.
    bruno.fill("#bid-amount", "25.00")
    bruno.dblclick("#bid-button")
    expect(bruno.locator("#bid-result")).to_have_text("Bid accepted: you are winning at €25.00.")
    expect(alice.locator("#price")).to_have_text("€25.00", timeout=LIVE_MS)
    expect(alice.locator("#minimum")).to_have_text("€26.00")  # re-read, never left stale
    screenshot(alice, "auction-outbid")
    screenshot(bruno, "auction-winning")

    # Everyone sees the same history in the same order.
    expect(watcher.locator("#price")).to_have_text("€25.00", timeout=LIVE_MS)
    expect(alice.locator("#history li")).to_have_count(5)
    seen = history(alice)
    assert history(bruno) == seen
    assert history(watcher) == seen
    bid_ids = [bid_id for bid_id, _ in seen]
    assert len(bid_ids) == len(set(bid_ids)), f"duplicate rows: {seen}"
    assert bid_ids == [str(i) for i in range(len(bid_ids) - 1, -1, -1)], f"gaps: {seen}"
    # Accepted: 10 (Alice), 11 (Bruno), 12 max 20 (Alice), 13 (Bruno), 25 once (Bruno).
    assert [amount for _, amount in seen] == ["€25.00", "€13.00", "€12.00", "€11.00", "€10.00"], seen
    screenshot(watcher, "auction-watcher")
    samples = sorted(watcher.evaluate("window.__martelo.metrics.updates"))
    assert samples, "the watcher recorded no live update"
    print(f"\nWS message to DOM write on the watcher: {len(samples)} updates, "
          f"median {samples[len(samples) // 2]:.1f} ms, max {samples[-1]:.1f} ms")

    # A reload resumes with no missing or duplicated rows.
    watcher.reload()
    expect(watcher.locator("#price")).to_have_text("€25.00")
    expect(watcher.locator("#history li")).to_have_count(len(seen))
    assert history(watcher) == seen

    # The watcher's network drops; bids go on; it comes back and catches up exactly.
    watcher.context.set_offline(True)
    expect(watcher.locator("#connection")).not_to_have_attribute("data-state", "live", timeout=8_000)
    bid(alice, "26.00")
    expect(alice.locator("#bid-result")).to_contain_text("Bid accepted")
    expect(bruno.locator("#price")).to_have_text("€26.00", timeout=LIVE_MS)
    after = history(alice)
    assert len(after) > len(seen)
    watcher.context.set_offline(False)
    expect(watcher.locator("#connection")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(watcher.locator("#history li")).to_have_count(len(after))
    assert history(watcher) == after

    # A phone's width.
    phone = new_page(390, 844)
    phone.goto(url)
    expect(phone.locator("#history li")).to_have_count(len(after))
    screenshot(phone, "auction-phone", full_page=True)


def test_an_admin_suspends_a_bidder_whose_bids_are_then_refused(new_page, seller, admin_credentials):
    auction = must_create_auction(seller["token"], unique("Old clock "), 600)
    name = unique("dora")
    must_sign_up(name, display_name="Dora")
    bidder = new_page()
    sign_in(bidder, name)
    bidder.goto(f"{base_url()}/auctions/{auction}")
    bid(bidder, "10.00")
    expect(bidder.locator("#bid-result")).to_contain_text("Bid accepted")

    admin = new_page()
    sign_in(admin, *admin_credentials)
    admin.get_by_role("link", name="Admin", exact=True).click()
    admin.fill("#user-prefix", name)
    admin.click("#find-users")
    expect(admin.locator("#users tr")).to_have_count(1)
    row = admin.locator(f"tr[data-username='{name}']")
    expect(row.locator(".status")).to_have_text("Active")
    row.locator("input").fill("Shill bidding")
    row.locator("button", has_text="Suspend").click()
    expect(admin.locator(f"tr[data-username='{name}'] .status")).to_have_text("Suspended: Shill bidding")
    screenshot(admin, "admin-users")

    # The bidder's page shows the suspension; a bid is refused.
    expect(bidder.locator("#banner")).to_contain_text("suspended", timeout=5_000)
    bid(bidder, "12.00")
    expect(bidder.locator("#bid-result")).to_contain_text("suspended")

    # Reinstated, the account is active again.
    admin.locator(f"tr[data-username='{name}'] button", has_text="Reinstate").click()
    expect(admin.locator(f"tr[data-username='{name}'] .status")).to_have_text("Active")


def test_an_auction_closes_by_itself_and_shows_the_winner(new_page, seller):
    title = unique("Quick sale ")
    auction = must_create_auction(seller["token"], title, 8)
    name = unique("emil")
    must_sign_up(name)
    winner, watcher = new_page(), new_page()
    sign_in(winner, name)
    for page in (winner, watcher):
        page.goto(f"{base_url()}/auctions/{auction}")
        expect(page.locator("#countdown")).to_contain_text("left")
    bid(winner, "10.00")
    expect(winner.locator("#bid-result")).to_contain_text("Bid accepted")
    # No reload: the close arrives as the server's verdict.
    expect(winner.locator("#verdict")).to_have_text("You won this auction for €10.00.", timeout=30_000)
    expect(watcher.locator("#verdict")).to_contain_text("Sold to Bidder #", timeout=5_000)
    expect(watcher.locator("#countdown")).to_have_text("Closed")
    expect(watcher.locator("#extended")).to_be_hidden()  # no soft close, never extended
    expect(winner.locator("#bid-form")).to_have_count(0)
    screenshot(watcher, "auction-closed")


def test_the_list_shows_open_auctions_and_first_load_is_small(new_page, seller):
    title = unique("Listed chair ")
    auction = must_create_auction(seller["token"], title, 3600, buy_now_price=5000)
    page = new_page()
    page.goto(base_url() + "/")
    card = page.locator(f"a[data-auction='{auction}']")
    expect(card).to_contain_text(title)
    expect(card).to_contain_text("Buy now €50.00")
    page.fill("#search", title)
    expect(page.locator("#auctions li")).to_have_count(1)
    page.fill("#search", "")
    screenshot(page, "auctions")
    card.click()
    expect(page).to_have_url(re.compile(rf"/auctions/{auction}$"))
    expect(page.locator("#buy-now")).to_have_text("€50.00")

    # First load of an auction page in a fresh browser: what it costs.
    fresh = new_page()
    started = time.monotonic()
    fresh.goto(f"{base_url()}/auctions/{auction}")
    expect(fresh.locator("#title")).to_have_text(title)
    wall_ms = (time.monotonic() - started) * 1000
    figures = fresh.evaluate(
        """() => {
          const nav = performance.getEntriesByType('navigation')[0];
          const resources = performance.getEntriesByType('resource');
          const bytes = [nav, ...resources].reduce((sum, entry) => sum + (entry.transferSize || 0), 0);
          const rendered = performance.getEntriesByName('martelo:auction-rendered')[0];
          return { bytes, files: resources.length + 1,
                   domContentLoaded: nav.domContentLoadedEventEnd,
                   rendered: rendered ? rendered.startTime : null };
        }"""
    )
    assert figures["rendered"] is not None, "the page marks its first live render"
    print(f"\nfirst load of an auction page: {figures['bytes']} bytes in {figures['files']} files, "
          f"DOMContentLoaded {figures['domContentLoaded']:.0f} ms, live state rendered "
          f"{figures['rendered']:.0f} ms after navigation start (wall {wall_ms:.0f} ms)")
    assert figures["bytes"] < 200_000, figures


def test_a_gateway_restart_resumes_with_no_missing_or_duplicate_rows(new_page, seller):
    auction = must_create_auction(seller["token"], unique("Restart rug "), 600)
    url = f"{base_url()}/auctions/{auction}"
    name, other = unique("fern"), unique("gus")
    must_sign_up(name)
    must_sign_up(other)
    other_token = must_token(other)
    bidder, watcher = new_page(), new_page()
    sign_in(bidder, name)
    for page in (bidder, watcher):
        page.goto(url)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    bid(bidder, "10.00")
    expect(watcher.locator("#history li")).to_have_count(1, timeout=LIVE_MS)

    restart_gateway()
    # Both pages come back by themselves (same cookies: the key ring is shared).
    for page in (bidder, watcher):
        expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15_000)
    # Someone else bids (through the API: setting the stage); both pages see it live.
    status, answer = http("POST", f"/v1/auctions/{auction}/bids", {"amount": 1100},
                          token=other_token, key=unique("bid-"))
    assert status == 201, answer
    expect(watcher.locator("#history li")).to_have_count(2, timeout=LIVE_MS)
    expect(bidder.locator("#standing")).to_have_text("You were outbid.", timeout=LIVE_MS)
    # The bidder's session survived the restart (the key ring is shared): a bid is accepted.
    bid(bidder, "12.00")
    expect(bidder.locator("#bid-result")).to_have_text("Bid accepted: you are winning at €12.00.")
    expect(watcher.locator("#history li")).to_have_count(3, timeout=LIVE_MS)
    expected = [["2", "€12.00"], ["1", "€11.00"], ["0", "€10.00"]]
    assert history(watcher) == expected
    assert history(bidder) == expected
