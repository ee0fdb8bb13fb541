// Browse auctions: open, ending soon, closed (paged with the API's `next` cursor), a title
// search over the loaded pages, and "My auctions" for a seller (the pages filtered by the
// seller id, since the API has no seller filter yet).

import { api, session } from '../api.js';
import { h, replace, setText } from '../dom.js';
import { money, remaining, when } from '../format.js';
import { describe } from '../messages.js';
import { live } from '../live.js';

const PAGE = 24;
const MINE_PAGES_MAX = 20;
const FILTERS = [
  ['open', 'Open'],
  ['closing_soon', 'Ending soon'],
  ['closed', 'Closed'],
];

const PHASE_TEXT = { scheduled: 'Not open yet', open: 'Open', ended: 'Closing…', closed: 'Closed' };

function endsText(auction) {
  const now = live.serverNowUs();
  if (auction.phase === 'closed') return `Ended ${when(auction.end_us)}`;
  if (auction.phase === 'scheduled' && auction.start_us > now) return `Opens in ${remaining(auction.start_us - now)}`;
  return auction.end_us > now ? `Ends in ${remaining(auction.end_us - now)}` : 'Closing…';
}

function card(auction) {
  const price = auction.price ?? null;
  const ends = h('p', { class: 'meta ends' }, endsText(auction));
  ends.auction = auction;
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
        ends)));
}

export function mount(main, { mode, query }) {
  const mine = mode === 'mine';
  if (mine && !session.user) {
    replace(main, h('h1', {}, 'My auctions'), h('p', {}, h('a', { href: '/signin?next=/mine' }, 'Sign in'), ' to see your auctions.'));
    return null;
  }
  let filter = mine ? 'all' : (query.get('filter') ?? 'open');
  let next = null;
  let loaded = [];
  let stopped = false;
  const list = h('ul', { class: 'grid', id: 'auctions', 'aria-live': 'polite', 'aria-busy': 'true' });
  const status = h('p', { class: 'muted', role: 'status' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Show more');
  const search = h('input', { type: 'search', id: 'search', placeholder: 'Search titles', 'aria-label': 'Search titles' });
  const tabs = FILTERS.map(([value, label]) => h('button', {
    type: 'button', 'aria-pressed': String(value === filter), 'data-filter': value,
    onclick: () => {
      filter = value;
      for (const tab of tabs) tab.setAttribute('aria-pressed', String(tab.dataset.filter === filter));
      history.replaceState(null, '', `/?filter=${filter}`);
      load(true);
    },
  }, label));

  function show() {
    const needle = search.value.trim().toLowerCase();
    const rows = loaded.filter((auction) => !needle || auction.title.toLowerCase().includes(needle));
    replace(list, rows.map(card));
    list.setAttribute('aria-busy', 'false');
    status.textContent = rows.length === 0
      ? (needle ? 'No loaded auction matches that search.' : mine ? 'You have no auctions yet.' : 'No auctions here yet.')
      : '';
    more.hidden = !next;
  }

  async function load(reset) {
    if (reset) {
      loaded = [];
      next = null;
      list.setAttribute('aria-busy', 'true');
    }
    more.disabled = true;
    try {
      let pages = 0;
      do {
        const params = new URLSearchParams({ filter, limit: String(PAGE) });
        if (next) params.set('after', next);
        const page = await api('GET', `/v1/auctions?${params}`);
        if (stopped) return;
        const rows = mine ? page.auctions.filter((auction) => auction.seller === session.user.id) : page.auctions;
        loaded.push(...rows);
        next = page.next;
        pages += 1;
      } while (mine && next && pages < MINE_PAGES_MAX);
      show();
    } catch (error) {
      status.textContent = describe(error);
    } finally {
      more.disabled = false;
    }
  }

  search.addEventListener('input', show);
  more.addEventListener('click', () => load(false));
  const refreshTimer = setInterval(() => {
    for (const ends of list.querySelectorAll('.ends')) setText(ends, endsText(ends.auction));
  }, 1000);
  replace(main,
    h('h1', {}, mine ? 'My auctions' : 'Auctions'),
    h('div', { class: 'filters' },
      mine ? null : h('div', { class: 'tabs', role: 'group', 'aria-label': 'Which auctions' }, tabs),
      h('div', { class: 'search' }, search)),
    status, list, h('p', { class: 'more' }, more));
  load(true);
  return () => {
    stopped = true;
    clearInterval(refreshTimer);
  };
}
