"""The web UI in a real Chromium against a real cluster and gateway.

Scenarios (issue #14): sign-up and sign-in errors and an expired session; a seller creates,
edits and cancels through the form; two bidders bid against each other live while a third
person watches, with soft close extending the end; reload and a dropped socket resume with
no missing or duplicated history rows; an admin suspends a bidder whose bids are then
refused; an auction closes by itself and shows the winner; an admin voids a bid that a
watcher sees struck live; buy-it-now sells at once on every page; the list sorts, searches
and pages on the server; sign-out clears the cookies even when the token is refused; outbid
notices replace each other; the admin's audit search and a bidder's own bids from the sink's
Postgres, and what both pages say on a gateway without it. Screenshots go to docs/img/. The hot-auction measurement
(1,000 events/s) is in test_web_perf.py (after these, so the bench's auction stays out of
the screenshots).
"""

import json
import re
import time
import urllib.error
import urllib.request

from playwright.sync_api import Page, expect

from conftest import (
    PASSWORD,
    base_url,
    http,
    must_create_auction,
    must_sign_up,
    must_token,
    no_history_url,
    restart_gateway,
    screenshot,
    sign_in,
    unique,
)

# "Each sees the other's bid within 1 s without reloading" (issue #14).
LIVE_MS = 1_000
# Fresh-browser loads of an auction page measured by the first-load scenario.
FIRST_LOADS = 3


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
    # `input#title`: until the edit form mounts, `#title` is still the auction page's
    # heading, on which a value check fails at once instead of waiting.
    expect(page.locator("input#title")).to_have_value(title)
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
    for name in names:
        must_sign_up(name)
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
    # The leader by display name (sign-up gives "Alice…" for "alice…"), never an id.
    expect(bruno.locator("#leader")).to_have_text(names[0].capitalize(), timeout=LIVE_MS)
    expect(bruno.locator("#seller")).to_contain_text("Sold by Sally Seller")
    expect(bruno.locator("#extended")).to_have_text("Extended by 30s", timeout=LIVE_MS)
    expect(alice.locator("#standing")).to_have_text("You are winning.")

    # Bruno outbids her: Alice sees it and the outbid notice at once.
    bid(bruno, "11.00")
    expect(bruno.locator("#bid-result")).to_have_text("Bid accepted: you are winning at €11.00.")
    expect(alice.locator("#price")).to_have_text("€11.00", timeout=LIVE_MS)
    expect(alice.locator("#standing")).to_have_text("You were outbid.", timeout=LIVE_MS)
    expect(alice.locator(".toast.bad")).to_contain_text("You were outbid", timeout=LIVE_MS)
    # A bid under the minimum is refused with the engine's reason in plain words, naming the
    # minimum the page reads after the refusal.
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
    # The next minimum comes with each price event: never left stale.
    expect(alice.locator("#minimum")).to_have_text("€26.00")
    expect(watcher.locator("#minimum")).to_have_text("€26.00", timeout=LIVE_MS)
    expect(alice.locator("#leader")).to_have_text(names[1].capitalize())
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
    expect(watcher.locator("#verdict")).to_have_text(
        f"Sold to {name.capitalize()} for €10.00.", timeout=5_000
    )
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
    # The server answers the cleared search with every open auction (the earlier scenarios
    # listed several), not the one match.
    expect(page.locator("#auctions li")).not_to_have_count(1)
    screenshot(page, "auctions")
    card.click()
    expect(page).to_have_url(re.compile(rf"/auctions/{auction}$"))
    expect(page.locator("#buy-now")).to_have_text("€50.00")

    # First load of an auction page in a fresh browser (no cache, no cookies): what it costs,
    # three times. "Interactive" is the page's mark `martelo:auction-rendered`: the first
    # frame that draws the auction's live state (from the WebSocket snapshot: price, leader,
    # minimum, countdown, history, the bid form), not a read that is not yet live.
    loads = [first_load(new_page, auction, title) for _ in range(FIRST_LOADS)]
    for figures in loads:
        assert figures["bytes"] < 200_000, figures
    rendered = sorted(figures["rendered"] for figures in loads)
    print(f"first load of an auction page, {FIRST_LOADS} fresh browsers: live state rendered "
          f"{', '.join(f'{ms:.0f}' for ms in rendered)} ms after navigation start "
          f"(median {rendered[len(rendered) // 2]:.0f} ms)")


def first_load(new_page, auction: int, title: str) -> dict:
    """Loads an auction page in a fresh browser context; prints and returns its timeline."""
    fresh = new_page()
    started = time.monotonic()
    fresh.goto(f"{base_url()}/auctions/{auction}")
    expect(fresh.locator("#title")).to_have_text(title)
    expect(fresh.locator("#bid-card")).to_be_visible()
    wall_ms = (time.monotonic() - started) * 1000
    figures = fresh.evaluate(
        """() => {
          const nav = performance.getEntriesByType('navigation')[0];
          const resources = performance.getEntriesByType('resource');
          const bytes = [nav, ...resources].reduce((sum, entry) => sum + (entry.transferSize || 0), 0);
          const mark = (name) => performance.getEntriesByName(name, 'mark')[0]?.startTime ?? null;
          const files = resources.map((entry) => [entry.name.replace(/^.*\\/assets\\//, ''),
            entry.startTime, entry.responseEnd]);
          files.sort((a, b) => a[1] - b[1]);
          return { bytes, files: resources.length + 1, html: nav.responseEnd,
                   domContentLoaded: nav.domContentLoadedEventEnd,
                   appStart: mark('martelo:app-start'), wsOpen: mark('martelo:ws-open'),
                   snapshot: mark('martelo:snapshot'),
                   rendered: mark('martelo:auction-rendered'), timeline: files };
        }"""
    )
    assert figures["rendered"] is not None, "the page marks its first live render"
    last_file = max(end for _, _, end in figures["timeline"])
    ms = lambda value: "-" if value is None else f"{value:.0f}"  # noqa: E731
    print(f"\nfirst load of an auction page: {figures['bytes']} bytes in {figures['files']} files, "
          f"DOMContentLoaded {figures['domContentLoaded']:.0f} ms, live state rendered "
          f"{figures['rendered']:.0f} ms after navigation start (wall {wall_ms:.0f} ms); "
          f"html {ms(figures['html'])}, last file {last_file:.0f}, app.js runs "
          f"{ms(figures['appStart'])}, socket open {ms(figures['wsOpen'])}, snapshot "
          f"{ms(figures['snapshot'])} ms; files (start-end ms): "
          + ", ".join(f"{name} {begin:.0f}-{end:.0f}" for name, begin, end in figures["timeline"]))
    return figures


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


def test_an_admin_voids_a_bid_and_a_watcher_sees_it_struck_live(new_page, seller, admin_credentials):
    auction = must_create_auction(seller["token"], unique("Vase "), 600)
    url = f"{base_url()}/auctions/{auction}"
    honest, shill = unique("hana"), unique("shil")
    must_sign_up(honest)
    shill_id = must_sign_up(shill)
    honest_token, shill_token = must_token(honest), must_token(shill)
    # Setting the stage through the API: 10.00 by Hana, then 15.00 by the shill.
    for token, amount in ((honest_token, 1000), (shill_token, 1500)):
        status, answer = http("POST", f"/v1/auctions/{auction}/bids", {"amount": amount},
                              token=token, key=unique("bid-"))
        assert status == 201, answer
    watcher = new_page()
    watcher.goto(url)
    expect(watcher.locator("#price")).to_have_text("€15.00")
    expect(watcher.locator("#leader")).to_have_text(shill.capitalize())
    expect(watcher.locator("#history button.void")).to_have_count(0)  # admins only

    # Only an admin may void; the route says so with a stable code.
    status, answer = http("POST", f"/v1/auctions/{auction}/bids/1/void", {"reason": "no"},
                          token=honest_token, key=unique("void-"))
    assert (status, answer["code"]) == (403, "forbidden"), answer

    admin = new_page()
    sign_in(admin, *admin_credentials)
    admin.goto(url)
    row = admin.locator("#history li[data-bid='1']")
    row.locator("button.void").click()
    expect(admin.locator("#void-target")).to_have_text(f"Void the bid of €15.00 by {shill.capitalize()}?")
    admin.click("#void-button")  # no reason yet
    expect(admin.locator("#void-result")).to_have_text("Give a reason: the bidders see it.")
    admin.fill("#void-reason", "Shill bidding")
    admin.click("#void-button")
    expect(admin.locator("#void-result")).to_contain_text("The bid is voided")

    # The watcher, without reloading: the row struck with its reason, the price recomputed
    # by the engine without the bid (Hana leads at her 10.00), the minimum with it.
    struck = watcher.locator("#history li[data-bid='1']")
    expect(struck).to_have_class("voided", timeout=LIVE_MS)
    expect(struck).to_contain_text("(voided)")
    expect(struck).to_contain_text("Voided: Shill bidding")
    expect(watcher.locator("#price")).to_have_text("€10.00", timeout=LIVE_MS)
    expect(watcher.locator("#leader")).to_have_text(honest.capitalize())
    expect(watcher.locator("#minimum")).to_have_text("€11.00")
    expect(watcher.locator("#bid-count")).to_have_text("1")
    status, read = http("GET", f"/v1/auctions/{auction}")
    assert (read["price"], read["next_minimum_bid"]) == (1000, 1100), read
    screenshot(admin, "auction-admin-void")

    # Voiding it again is refused with the engine's code.
    admin_token = must_token(*admin_credentials)
    status, answer = http("POST", f"/v1/auctions/{auction}/bids/1/void", {"reason": "again"},
                          token=admin_token, key=unique("void-"))
    assert (status, answer["code"]) == (409, "bid_already_voided"), answer
    assert shill_id != read["leading_bidder"]

    # The shill comes back with a bid and then raises their own maximum: voiding one bid
    # would leave the other in force, so the admin removes the bidder, every bid at once.
    for amount, maximum in ((1200, 1200), (1200, 4000)):
        status, answer = http("POST", f"/v1/auctions/{auction}/bids",
                              {"amount": amount, "max": maximum}, token=shill_token,
                              key=unique("bid-"))
        assert status == 201, answer
    expect(watcher.locator("#leader")).to_have_text(shill.capitalize(), timeout=LIVE_MS)
    status, answer = http("POST", f"/v1/auctions/{auction}/bidders/{shill_id}/remove",
                          {"reason": "no"}, token=honest_token, key=unique("remove-"))
    assert (status, answer["code"]) == (403, "forbidden"), answer
    admin.locator("#history li[data-bid='2'] button.void").click()
    admin.fill("#void-reason", "Shill bidding")
    admin.click("#remove-bidder-button")
    expect(admin.locator("#void-result")).to_contain_text(
        f"Every bid of {shill.capitalize()} is voided")
    expect(watcher.locator("#price")).to_have_text("€10.00", timeout=LIVE_MS)
    expect(watcher.locator("#leader")).to_have_text(honest.capitalize())
    status, answer = http("POST", f"/v1/auctions/{auction}/bidders/{shill_id}/remove",
                          {"reason": "again"}, token=admin_token, key=unique("remove-"))
    assert (status, answer["code"]) == (404, "bid_not_found"), answer


def test_buy_it_now_sells_at_once_on_every_page(new_page, seller):
    title = unique("Teapot ")
    auction = must_create_auction(seller["token"], title, 600, buy_now_price=5000)
    url = f"{base_url()}/auctions/{auction}"
    buyer_name, other_name = unique("ivo"), unique("jana")
    must_sign_up(buyer_name)
    must_sign_up(other_name)
    buyer, other, watcher = new_page(), new_page(), new_page()
    sign_in(buyer, buyer_name)
    sign_in(other, other_name)
    for page in (buyer, other, watcher):
        page.goto(url)
        expect(page.locator("#buy-now")).to_have_text("€50.00")
    expect(other.locator("#buy-button")).to_have_text("Buy it now for €50.00")
    expect(watcher.locator("#buy-button")).to_have_count(0)  # signed out: no button

    buyer.click("#buy-button")
    expect(buyer.locator("#buy-button")).to_have_text("Confirm: buy now for €50.00")
    buyer.click("#buy-button")
    # Sold: the form gives way to the server's verdict at once.
    expect(buyer.locator("#verdict")).to_have_text("You won this auction for €50.00 with buy it now.")
    sold = f"Sold to {buyer_name.capitalize()} for €50.00 with buy it now."
    expect(other.locator("#verdict")).to_have_text(sold, timeout=LIVE_MS)
    expect(watcher.locator("#verdict")).to_have_text(sold, timeout=LIVE_MS)
    expect(other.locator("#buy-button")).to_be_hidden()
    expect(other.locator("#bid-form")).to_have_count(0)
    expect(watcher.locator("#countdown")).to_have_text("Closed")
    expect(watcher.locator("#buy-now")).to_have_text("Not available")
    screenshot(watcher, "auction-bought")
    # Closed auctions in the list show their outcome.
    watcher.goto(f"{base_url()}/?tab=closed")
    watcher.fill("#search", title)
    sold_card = watcher.locator(f"a[data-auction='{auction}']")
    expect(sold_card).to_contain_text(f"Sold to {buyer_name.capitalize()} for €50.00")

    # Buy it now disappears with the first bid (no reserve): on the page, without reloading.
    second = must_create_auction(seller["token"], unique("Kettle "), 600, buy_now_price=5000)
    other.goto(f"{base_url()}/auctions/{second}")
    expect(other.locator("#buy-button")).to_be_visible()
    status, answer = http("POST", f"/v1/auctions/{second}/bids", {"amount": 1000},
                          token=must_token(buyer_name), key=unique("bid-"))
    assert status == 201, answer
    expect(other.locator("#price")).to_have_text("€10.00", timeout=LIVE_MS)
    expect(other.locator("#buy-button")).to_be_hidden(timeout=LIVE_MS)
    expect(other.locator("#buy-now")).to_have_text("Not available")


def test_the_list_sorts_searches_and_pages_on_the_server(new_page, seller):
    tag = unique("zq")
    other_seller = unique("kim")
    other_id = must_sign_up(other_seller, roles=("seller",), display_name="Kim Kettles")
    other_token = must_token(other_seller)
    # 26 auctions: more than a page (24). Ends spread so "ending soon" has one order.
    created = []
    for index in range(26):
        token = other_token if index == 0 else seller["token"]
        auction = must_create_auction(token, f"Lot {index:02d} {tag}", 900 + index * 10)
        created.append(auction)
    page = new_page()
    page.goto(base_url() + "/")
    page.fill("#search", tag)
    cards = page.locator("#auctions li a")
    # The search answered (every card is one of ours), one page of 24.
    expect(page.locator("#auctions li a", has_text=tag)).to_have_count(24)
    expect(cards).to_have_count(24)
    # Ending soon (the default tab): the soonest end first.
    assert cards.nth(0).get_attribute("data-auction") == str(created[0])
    assert cards.nth(1).get_attribute("data-auction") == str(created[1])
    page.click("#more")
    expect(cards).to_have_count(26)
    expect(page.locator("#more")).to_be_hidden()
    shown = [card.get_attribute("data-auction") for card in cards.all()]
    assert shown == [str(auction) for auction in created], "pages join with no gap or repeat"
    expect(page).to_have_url(re.compile(rf"q={tag}"))

    # Newest first.
    page.click("button[data-tab='newest']")
    expect(cards.first).to_have_attribute("data-auction", str(created[-1]))
    expect(cards).to_have_count(24)
    # The search narrows on the server; a miss says so.
    page.fill("#search", f"Lot 07 {tag}")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("By Sally Seller")
    page.fill("#search", tag + "nothing")
    expect(page.locator("#list-status")).to_have_text(f'No auction title contains "{tag}nothing".')

    # By seller: from an auction page's seller link.
    page.goto(f"{base_url()}/auctions/{created[0]}")
    expect(page.locator("#seller")).to_contain_text("Kim Kettles")
    page.click("#seller-link")
    expect(page.locator("#seller-filter")).to_contain_text("Auctions by Kim Kettles")
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-auction", str(created[0]))

    # The API bounds and validates what the page sends.
    status, answer = http("GET", "/v1/auctions?sort=price")
    assert (status, answer["code"]) == (400, "invalid_argument"), answer
    status, answer = http("GET", "/v1/auctions?q=" + "x" * 101)
    assert status == 400, answer
    status, answer = http("GET", f"/v1/auctions?seller={other_id}&sort=ending&filter=all")
    assert [a["id"] for a in answer["auctions"]] == [created[0]], answer


def test_sign_out_clears_the_cookies_even_when_the_token_is_refused(new_page):
    name = unique("lena")
    must_sign_up(name)
    page = new_page()
    sign_in(page, name)
    # The access cookie is gone (as when it expired): the server refuses the token on
    # sign-out, and clears every cookie all the same.
    page.context.clear_cookies(name="martelo_access")
    page.click("#sign-out")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator(".toast").last).to_have_text("You are signed out.")
    left = {cookie["name"] for cookie in page.context.cookies()}
    assert not left & {"martelo_access", "martelo_refresh", "martelo_csrf"}, left
    page.reload()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def test_outbid_notices_replace_each_other(new_page, seller):
    auction = must_create_auction(seller["token"], unique("Globe "), 600)
    name, rival = unique("milo"), unique("nora")
    must_sign_up(name)
    must_sign_up(rival)
    rival_token = must_token(rival)
    page = new_page()
    sign_in(page, name)
    page.goto(f"{base_url()}/auctions/{auction}")
    bid(page, "10.00")
    expect(page.locator("#bid-result")).to_contain_text("Bid accepted")
    for amount in (1100, 1300, 1500):
        status, answer = http("POST", f"/v1/auctions/{auction}/bids", {"amount": amount},
                              token=rival_token, key=unique("bid-"))
        assert status == 201, answer
        # Outbid again and again, while winning back in between.
        expect(page.locator("#price")).to_have_text(f"€{amount // 100}.00", timeout=LIVE_MS)
        bid(page, f"{amount // 100 + 1}.00")
        expect(page.locator("#bid-result")).to_contain_text("Bid accepted")
    expect(page.locator(".toast.bad")).to_have_count(1)
    expect(page.locator(".toast.bad")).to_contain_text("You were outbid")


def test_the_audit_page_and_my_bids_show_the_sinks_history(new_page, seller, admin_credentials):
    """The suite's gateway reads the sink's Postgres: an auction and its bids, written by the
    nodes' sink, appear in the admin's audit search (and its CSV) and in the bidder's own
    bids, in the browser."""
    item = must_create_auction(seller["token"], unique("Audited lamp "), ends_in_secs=600)
    name = unique("olga")
    must_sign_up(name)
    status, answer = http("POST", f"/v1/auctions/{item}/bids", {"amount": 1500},
                          token=must_token(name), key=unique("bid-"))
    assert status == 201, answer

    admin = new_page()
    sign_in(admin, *admin_credentials)
    admin.get_by_role("link", name="Audit", exact=True).click()
    expect(admin.locator("h1")).to_have_text("Audit")
    admin.fill("#audit-user", "abc")
    admin.click("#audit-search")
    expect(admin.locator("#audit-status")).to_have_text("Ids are whole numbers.")
    expect(admin.locator("#audit-user")).to_have_attribute("aria-invalid", "true")
    admin.fill("#audit-user", "")
    admin.fill("#audit-auction", str(item))
    # The sink copies within a second or two of the commit: search until it has.
    deadline = time.monotonic() + 20
    while True:
        admin.click("#audit-search")
        expect(admin.locator("#audit-status")).not_to_have_text("Searching…")
        if admin.locator("#audit-rows tr[data-kind=bid_accepted]").count() == 1:
            break
        assert time.monotonic() < deadline, admin.locator("#audit-status").text_content()
        time.sleep(0.5)
    expect(admin.locator("#audit-rows tr[data-kind=auction_created]")).to_have_count(1)
    expect(admin.locator("#audit-csv")).to_be_visible()
    assert f"auction={item}" in admin.locator("#audit-csv").get_attribute("href")
    screenshot(admin, "admin-audit")
    admin.select_option("#audit-kind", "bid_voided")
    admin.click("#audit-search")
    expect(admin.locator("#audit-status")).to_have_text("No event matches these filters.")

    request = urllib.request.Request(
        f"{base_url()}/v1/audit?auction={item}&format=csv",
        headers={"authorization": f"Bearer {must_token(*admin_credentials)}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.headers["content-type"].startswith("text/csv")
        csv_text = answer.read().decode()
    assert csv_text.startswith("at,at_us,group_id"), csv_text
    assert ",bid_accepted," in csv_text, csv_text

    bidder = new_page()
    sign_in(bidder, name)
    bidder.get_by_role("link", name="My bids", exact=True).click()
    row = bidder.locator(f"#my-bids-rows tr[data-auction='{item}']")
    expect(row).to_contain_text("€15.00", timeout=5_000)
    expect(row).to_contain_text("Winning")
    expect(bidder.locator("#my-wins-status")).to_have_text("No wins yet.")


def test_without_the_history_database_the_pages_say_so(new_page, admin_credentials):
    """A gateway started without --postgres: the audit search and a bidder's history answer
    503 history_unavailable, and the pages say so in plain words."""
    base = no_history_url()
    admin = new_page()
    sign_in(admin, *admin_credentials, base=base)
    admin.get_by_role("link", name="Audit", exact=True).click()
    expect(admin.locator("#audit-status")).to_contain_text("runs without its history database")
    expect(admin.locator("#audit-csv")).to_be_hidden()
    admin.fill("#audit-user", "7")
    admin.select_option("#audit-kind", "bid_voided")
    admin.click("#audit-search")
    expect(admin.locator("#audit-status")).to_contain_text("runs without its history database")
    request = urllib.request.Request(
        f"{base}/v1/audit?user=7",
        headers={"authorization": f"Bearer {must_token(*admin_credentials)}"},
    )
    try:
        urllib.request.urlopen(request, timeout=30)
        raise AssertionError("the audit search answered without a database")
    except urllib.error.HTTPError as error:
        assert error.code == 503, error.code
        assert json.loads(error.read())["code"] == "history_unavailable"

    name = unique("olga")
    must_sign_up(name)
    bidder = new_page()
    sign_in(bidder, name, base=base)
    bidder.get_by_role("link", name="My bids", exact=True).click()
    expect(bidder.locator("#my-bids-status")).to_contain_text("without its history database")
    expect(bidder.locator("#my-wins-status")).to_contain_text("without its history database")