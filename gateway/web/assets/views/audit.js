// Admin: the audit search over every committed event (`GET /v1/audit`, read from the sink's
// Postgres): filters (user, actor, auction, kind, time range), keyset "Show more" paging
// with the answer's `next_cursor`, and a CSV download of the same filters
// (`format=csv`). A gateway without a history database answers 503
// `history_unavailable`, and the page says so in plain words.

import { api, session } from '../api.js';
import { h, replace } from '../dom.js';
import { iso, when, zone } from '../format.js';
import { describe } from '../messages.js';

const PAGE = 50;
const KINDS = [
  'auction_created', 'auction_edited', 'auction_cancelled', 'auction_closed', 'bid_accepted',
  'bid_voided', 'price_changed', 'price_cleared', 'end_extended', 'bidder_suspended',
  'bidder_reinstated', 'user_registered', 'user_suspended', 'user_reinstated', 'roles_changed',
  'password_changed', 'session_created', 'session_revoked', 'all_sessions_revoked',
];

/** µs since the epoch from a `datetime-local` value (the viewer's zone), or null. */
function micros(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms * 1000 : null;
}

function idField(id, label) {
  const input = h('input', { id, inputmode: 'numeric', pattern: '[0-9]*', autocomplete: 'off', maxlength: 16 });
  return { input, wrap: h('div', {}, h('label', { for: id }, label), input) };
}

/** One payload, shortened for a table cell (the full text is in the cell's title). */
function payloadText(payload) {
  const text = JSON.stringify(payload ?? null);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

export function mount(main) {
  if (!session.has('admin')) {
    replace(main, h('h1', {}, 'Audit'), h('p', {}, 'This page needs the admin role.'));
    return null;
  }
  let stopped = false;
  let next = null;
  let searches = 0;
  const user = idField('audit-user', 'User id');
  const actor = idField('audit-actor', 'Done by (user id)');
  const auction = idField('audit-auction', 'Auction id');
  const kind = h('select', { id: 'audit-kind' }, h('option', { value: '' }, 'Any kind'),
    KINDS.map((name) => h('option', { value: name }, name.replaceAll('_', ' '))));
  const from = h('input', { id: 'audit-from', type: 'datetime-local', step: 1 });
  const to = h('input', { id: 'audit-to', type: 'datetime-local', step: 1 });
  const find = h('button', { type: 'submit', id: 'audit-search' }, 'Search');
  const csv = h('a', { class: 'button secondary', id: 'audit-csv', download: 'martelo-audit.csv', href: '/v1/audit?format=csv' }, 'Download CSV');
  const status = h('p', { role: 'status', class: 'muted', id: 'audit-status' });
  const body = h('tbody', { id: 'audit-rows' });
  const more = h('button', { type: 'button', class: 'secondary', id: 'audit-more', hidden: true }, 'Show more');
  const table = h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'sr-only' }, 'Committed events, oldest first'),
      h('thead', {}, h('tr', {}, ['When', 'Kind', 'Auction', 'User', 'By', 'Details'].map((name) => h('th', { scope: 'col' }, name)))),
      body));

  /** The filters as query parameters, or an error sentence. */
  function filters() {
    const params = new URLSearchParams();
    for (const [name, field] of [['user', user], ['actor', actor], ['auction', auction]]) {
      const value = field.input.value.trim();
      field.input.removeAttribute('aria-invalid');
      if (!value) continue;
      if (!/^\d{1,16}$/.test(value)) {
        field.input.setAttribute('aria-invalid', 'true');
        return { error: 'Ids are whole numbers.' };
      }
      params.set(name, value);
    }
    if (kind.value) params.set('kind', kind.value);
    const fromUs = micros(from.value);
    const toUs = micros(to.value);
    if (fromUs !== null && toUs !== null && toUs <= fromUs) return { error: 'The end of the time range must be after its start.' };
    if (fromUs !== null) params.set('from', String(fromUs));
    if (toUs !== null) params.set('to', String(toUs));
    return { params };
  }

  function row(item) {
    return h('tr', { 'data-kind': item.kind },
      h('td', {}, h('time', { datetime: iso(item.at_us) }, when(item.at_us))),
      h('td', { class: 'kind' }, item.kind.replaceAll('_', ' ')),
      h('td', {}, item.auction_id ? h('a', { href: `/auctions/${item.auction_id}` }, `#${item.auction_id}`) : '–'),
      h('td', {}, item.user_id ?? '–'),
      h('td', {}, item.actor_id ?? '–'),
      h('td', { class: 'payload', title: JSON.stringify(item.payload ?? null) }, h('code', {}, payloadText(item.payload))));
  }

  async function search(reset) {
    const mine = reset ? ++searches : searches;
    const found = filters();
    if (found.error) {
      status.className = 'result error';
      status.textContent = found.error;
      return;
    }
    const csvParams = new URLSearchParams(found.params);
    csvParams.set('format', 'csv');
    csv.href = `/v1/audit?${csvParams}`;
    const params = new URLSearchParams(found.params);
    params.set('limit', String(PAGE));
    if (!reset && next) params.set('cursor', next);
    if (reset) next = null;
    status.className = 'muted';
    status.textContent = 'Searching…';
    more.disabled = true;
    try {
      const page = await api('GET', `/v1/audit?${params}`);
      if (stopped || mine !== searches) return;
      const rows = page.items.map(row);
      if (reset) replace(body, rows);
      else body.append(...rows);
      next = page.next_cursor;
      more.hidden = !next;
      table.hidden = false;
      csv.hidden = false;
      status.textContent = body.children.length === 0 ? 'No event matches these filters.' : '';
    } catch (error) {
      if (mine !== searches) return;
      more.hidden = true;
      status.className = 'result error';
      if (error.code === 'history_unavailable') {
        table.hidden = true;
        csv.hidden = true;
        // No database configured: no Retry-After (waiting will not help). A failing
        // database: Retry-After.
        status.textContent = error.retryAfter === null
          ? 'The audit history is not available: this gateway runs without its history database (Postgres). Start it with --postgres to search the audit trail.'
          : 'The audit history is not available right now: its database did not answer. Try again in a moment.';
      } else {
        status.textContent = describe(error);
      }
    } finally {
      more.disabled = false;
    }
  }

  const form = h('form', { class: 'audit-filters', role: 'search', 'aria-label': 'Audit filters', novalidate: true },
    user.wrap, actor.wrap, auction.wrap,
    h('div', {}, h('label', { for: 'audit-kind' }, 'Kind'), kind),
    h('div', {}, h('label', { for: 'audit-from' }, `From (${zone})`), from),
    h('div', {}, h('label', { for: 'audit-to' }, `Up to (${zone})`), to),
    h('div', { class: 'owner-actions' }, find, csv));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    search(true);
  });
  more.addEventListener('click', () => search(false));
  replace(main,
    h('p', {}, h('a', { href: '/admin' }, '← Accounts')),
    h('h1', {}, 'Audit'),
    h('p', { class: 'muted' }, 'Every committed event, oldest first, from the history database. It lags the auctions by the sink\u2019s delay (normally under a second).'),
    form, status, table, h('p', { class: 'more' }, more));
  search(true);
  return () => {
    stopped = true;
  };
}
