// A signed-in bidder's own activity, from the history database: "My bids" (`GET
// /v1/me/bids`: each bid with its auction, whether it was voided, and whether the bidder
// leads or won it now) and "My wins" (`GET /v1/me/wins`), each paged with "Show more".
// Without a history database the gateway answers 503 `history_unavailable` and the page
// says so.

import { api, session } from '../api.js';
import { h, replace } from '../dom.js';
import { iso, money, when } from '../format.js';
import { describe } from '../messages.js';

const PAGE = 25;
const STATUS_TEXT = { open: 'Open', sold: 'Sold', unsold: 'Not sold', cancelled: 'Cancelled' };

function unavailable(error) {
  if (error.code !== 'history_unavailable') return describe(error);
  return error.retryAfter === null
    ? 'Your history is not available: this server runs without its history database.'
    : 'Your history is not available right now. Try again in a moment.';
}

function auctionLink(row) {
  return h('a', { href: `/auctions/${row.auction_id}` }, row.title ?? `Auction #${row.auction_id}`);
}

function bidRow(row) {
  const standing = row.voided ? `Voided${row.void_reason ? `: ${row.void_reason}` : ''}`
    : row.leading_now ? (row.auction_status === 'open' ? 'Winning' : 'Won') : 'Outbid';
  return h('tr', { 'data-auction': row.auction_id, 'data-bid': row.bid_id },
    h('td', {}, auctionLink(row)),
    h('td', { class: 'amount' }, money(row.amount, row.currency ?? 'EUR')),
    h('td', {}, standing),
    h('td', {}, STATUS_TEXT[row.auction_status] ?? row.auction_status ?? '–'),
    h('td', {}, h('time', { datetime: iso(row.at_us) }, when(row.at_us))));
}

function winRow(row) {
  return h('tr', { 'data-auction': row.auction_id },
    h('td', {}, auctionLink(row)),
    h('td', { class: 'amount' }, row.price === null ? '–' : money(row.price, row.currency ?? 'EUR')),
    h('td', {}, row.sale_kind === 'buy_now' ? 'Buy it now' : 'Bidding'),
    h('td', {}, h('time', { datetime: iso(row.won_at_us) }, when(row.won_at_us))));
}

/** One paged table: its section, and a loader that fills it. */
function pagedTable({ id, title, path, columns, toRow, empty }) {
  let next = null;
  let stopped = false;
  const body = h('tbody', { id: `${id}-rows` });
  const status = h('p', { class: 'muted', role: 'status', id: `${id}-status` });
  const more = h('button', { type: 'button', class: 'secondary', id: `${id}-more`, hidden: true }, 'Show more');
  const table = h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map((name) => h('th', { scope: 'col' }, name)))), body));
  async function load(reset) {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (!reset && next) params.set('cursor', next);
    more.disabled = true;
    try {
      const page = await api('GET', `${path}?${params}`);
      if (stopped) return;
      const rows = page.items.map(toRow);
      if (reset) replace(body, rows);
      else body.append(...rows);
      next = page.next_cursor;
      more.hidden = !next;
      table.hidden = body.children.length === 0;
      status.className = 'muted';
      status.textContent = body.children.length === 0 ? empty : '';
    } catch (error) {
      if (stopped) return;
      table.hidden = true;
      status.className = 'result error';
      status.textContent = unavailable(error);
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', () => load(false));
  const section = h('section', { 'aria-labelledby': `${id}-title` },
    h('h2', { id: `${id}-title` }, title), status, table, h('p', { class: 'more' }, more));
  return { section, load, stop: () => { stopped = true; } };
}

export function mount(main) {
  if (!session.user) {
    replace(main, h('h1', {}, 'My activity'), h('p', {}, h('a', { href: '/signin?next=/activity' }, 'Sign in'), ' to see your bids and wins.'));
    return null;
  }
  const bids = pagedTable({
    id: 'my-bids', title: 'My bids', path: '/v1/me/bids', toRow: bidRow,
    columns: ['Auction', 'Bid', 'Standing', 'Auction status', 'When'], empty: 'You have not bid yet.',
  });
  const wins = pagedTable({
    id: 'my-wins', title: 'My wins', path: '/v1/me/wins', toRow: winRow,
    columns: ['Auction', 'Price', 'How', 'When'], empty: 'No wins yet.',
  });
  replace(main, h('h1', {}, 'My activity'),
    h('p', { class: 'muted' }, 'From the history database: a bid placed a moment ago may take a second to show.'),
    bids.section, wins.section);
  bids.load(true);
  wins.load(true);
  return () => {
    bids.stop();
    wins.stop();
  };
}
