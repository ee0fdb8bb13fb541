// Browse auctions: ending soon, newest, closed; search by title and by seller; "My
// auctions" for a seller. The gateway sorts, searches and pages (`GET /v1/auctions` with
// `sort`, `q`, `seller` and its keyset `next` cursor); the page shows one page at a time
// and "Show more" appends the next. The search asks the server after a short pause in
// typing, and an answer to an older search is dropped. Closed auctions show their outcome.

import { api, session } from '../api.js';
import { h, replace, setText } from '../dom.js';
import { money, remaining, when } from '../format.js';
import { describe } from '../messages.js';
import { live } from '../live.js';
import { nameListeners, nameOf } from '../names.js';

const PAGE = 24;
const SEARCH_PAUSE_MS = 250;
const QUERY_CHARS_MAX = 100;
// Tab → the listing's filter and sort.
const TABS = [
  ['ending', 'Ending soon', { filter: 'open', sort: 'ending' }],
  ['newest', 'Newest', { filter: 'open', sort: 'newest' }],
  ['closed', 'Closed', { filter: 'closed', sort: 'newest' }],
];

const PHASE_TEXT = { scheduled: 'Not open yet', open: 'Open', ended: 'Closing…', closed: 'Closed' };

function endsText(auction) {
  const now = live.serverNowUs();
  if (auction.phase === 'closed') return `Ended ${when(auction.end_us)}`;
  if (auction.phase === 'scheduled' && auction.start_us > now) return `Opens in ${remaining(auction.start_us - now)}`;
  return auction.end_us > now ? `Ends in ${remaining(auction.end_us - now)}` : 'Closing…';
}

function sellerText(auction) {
  if (auction.seller === session.user?.id) return 'Your auction';
  return `By ${nameOf(auction.seller) ?? `Seller #${auction.seller}`}`;
}

/** A closed auction's outcome in a few words ("Sold to Ana for €12.00"). */
function outcomeText(auction) {
  const result = auction.result;
  if (!result) return null;
  if (result.outcome === 'sold') {
    const who = result.winner === session.user?.id ? 'you' : nameOf(result.winner) ?? `Bidder #${result.winner}`;
    return `Sold to ${who} for ${money(result.price, auction.currency)}`;
  }
  if (result.outcome === 'unsold') return result.reason === 'reserve_not_met' ? 'Not sold: reserve not met' : 'Not sold: no bids';
  return 'Cancelled';
}

function card(auction) {
  const price = auction.price ?? null;
  const ends = h('p', { class: 'meta ends' }, endsText(auction));
  ends.auction = auction;
  const seller = h('p', { class: 'meta seller' }, sellerText(auction));
  seller.auction = auction;
  const outcome = auction.result ? h('p', { class: `meta outcome ${auction.result.outcome}` }, outcomeText(auction)) : null;
  if (outcome) outcome.auction = auction;
  return h('li', {},
    h('a', { href: `/auctions/${auction.id}`, 'data-auction': auction.id },
      h('article', { class: 'card' },
        h('h2', { class: 'title' }, auction.title),
        h('p', { class: 'price' }, money(price ?? auction.next_minimum_bid, auction.currency)),
        h('p', { class: 'meta' },
          price === null ? 'Starting price' : `${auction.bid_count} bid${auction.bid_count === 1 ? '' : 's'}`,
          ' · ', h('span', { class: 'badge' }, PHASE_TEXT[auction.phase] ?? auction.phase),
          auction.buy_now_price ? ' ' : null,
          auction.buy_now_price ? h('span', { class: 'badge good' }, `Buy now ${money(auction.buy_now_price, auction.currency)}`) : null),
        seller,
        outcome,
        ends)));
}

export function mount(main, { mode, query }) {
  const mine = mode === 'mine';
  if (mine && !session.user) {
    replace(main, h('h1', {}, 'My auctions'), h('p', {}, h('a', { href: '/signin?next=/mine' }, 'Sign in'), ' to see your auctions.'));
    return null;
  }
  let tab = TABS.some(([value]) => value === query.get('tab')) ? query.get('tab') : 'ending';
  const sellerParam = Number(query.get('seller'));
  let sellerFilter = mine ? session.user.id : (Number.isSafeInteger(sellerParam) && sellerParam > 0 ? sellerParam : null);
  let next = null;
  let generation = 0;
  let stopped = false;
  let pause = null;
  const list = h('ul', { class: 'grid', id: 'auctions', 'aria-live': 'polite', 'aria-busy': 'true' });
  const status = h('p', { class: 'muted', role: 'status', id: 'list-status' });
  const more = h('button', { type: 'button', class: 'secondary', id: 'more', hidden: true }, 'Show more');
  const search = h('input', { type: 'search', id: 'search', placeholder: 'Search titles', 'aria-label': 'Search titles', maxlength: QUERY_CHARS_MAX, value: query.get('q') ?? '' });
  const sellerNote = h('p', { class: 'muted', id: 'seller-filter' });
  const clearSeller = h('button', { type: 'button', class: 'link', id: 'clear-seller' }, 'All sellers');
  const tabs = TABS.map(([value, label]) => h('button', {
    type: 'button', 'aria-pressed': String(value === tab), 'data-tab': value,
    onclick: () => {
      tab = value;
      for (const button of tabs) button.setAttribute('aria-pressed', String(button.dataset.tab === tab));
      load(true);
    },
  }, label));

  function params() {
    const [, , { filter, sort }] = TABS.find(([value]) => value === tab);
    // A seller's own "Newest" includes their closed auctions.
    const found = new URLSearchParams({ filter: mine && tab === 'newest' ? 'all' : filter, sort, limit: String(PAGE) });
    const needle = search.value.trim();
    if (needle) found.set('q', needle);
    if (sellerFilter !== null) found.set('seller', String(sellerFilter));
    return found;
  }

  function remember() {
    if (mine) return;
    const shown = new URLSearchParams({ tab });
    if (search.value.trim()) shown.set('q', search.value.trim());
    if (sellerFilter !== null) shown.set('seller', String(sellerFilter));
    history.replaceState(null, '', `/?${shown}`);
  }

  function showSeller() {
    sellerNote.hidden = mine || sellerFilter === null;
    if (!sellerNote.hidden) {
      replace(sellerNote, `Auctions by ${nameOf(sellerFilter) ?? `Seller #${sellerFilter}`} · `, clearSeller);
    }
  }

  async function load(reset) {
    const mineGeneration = reset ? ++generation : generation;
    if (reset) {
      next = null;
      list.setAttribute('aria-busy', 'true');
      remember();
    }
    more.disabled = true;
    const found = params();
    if (!reset && next) found.set('after', next);
    try {
      const page = await api('GET', `/v1/auctions?${found}`);
      if (stopped || mineGeneration !== generation) return;
      const cards = page.auctions.map(card);
      if (reset) replace(list, cards);
      else list.append(...cards);
      next = page.next;
      list.setAttribute('aria-busy', 'false');
      const count = list.children.length;
      const needle = search.value.trim();
      status.textContent = count === 0
        ? (needle ? `No auction title contains "${needle}".` : mine ? 'You have no auctions yet.' : 'No auctions here yet.')
        : page.partial ? 'Showing the matches among the first 10,000 auctions; narrow the search to see the rest.' : '';
      more.hidden = !next;
    } catch (error) {
      if (mineGeneration === generation) status.textContent = describe(error);
    } finally {
      more.disabled = false;
    }
  }

  search.addEventListener('input', () => {
    clearTimeout(pause);
    pause = setTimeout(() => load(true), SEARCH_PAUSE_MS);
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      clearTimeout(pause);
      load(true);
    }
  });
  clearSeller.addEventListener('click', () => {
    sellerFilter = null;
    showSeller();
    load(true);
  });
  more.addEventListener('click', () => load(false));
  const refreshTimer = setInterval(() => {
    for (const ends of list.querySelectorAll('.ends')) setText(ends, endsText(ends.auction));
  }, 1000);
  const onNames = () => {
    for (const seller of list.querySelectorAll('.seller')) setText(seller, sellerText(seller.auction));
    for (const outcome of list.querySelectorAll('.outcome')) setText(outcome, outcomeText(outcome.auction));
    showSeller();
  };
  nameListeners.add(onNames);
  replace(main,
    h('h1', {}, mine ? 'My auctions' : 'Auctions'),
    h('div', { class: 'filters' },
      h('div', { class: 'tabs', role: 'group', 'aria-label': 'Which auctions' }, tabs),
      h('div', { class: 'search' }, search)),
    sellerNote, status, list, h('p', { class: 'more' }, more));
  showSeller();
  load(true);
  return () => {
    stopped = true;
    clearInterval(refreshTimer);
    clearTimeout(pause);
    nameListeners.delete(onNames);
  };
}
