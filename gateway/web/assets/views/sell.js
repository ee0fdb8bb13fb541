// A seller creates an auction, or edits one before its first bid. The Idempotency-Key of
// a create also names the auction (docs/API.md), so one intent keeps one key and one body
// (including its start time): a double click or a retry cannot create two auctions.

import { api, newKey, session } from '../api.js';
import { field, fieldError, h, replace } from '../dom.js';
import { fromLocalInput, minorToInput, parseMoney, toLocalInput, zone } from '../format.js';
import { describe, isUncertain } from '../messages.js';
import { live } from '../live.js';
import { navigate } from '../app.js';

const CURRENCIES = ['EUR', 'USD', 'GBP', 'CHF', 'JPY', 'BRL'];
const DAY_US = 24 * 3600 * 1e6;

/** The listing of an auction, from a WebSocket snapshot (it has the soft-close terms). */
function loadListing(id) {
  return new Promise((resolve, reject) => {
    live.subscribe(id, {
      snapshot: (message) => {
        live.unsubscribe(id);
        resolve(message.state);
      },
      event: () => {},
      error: (message) => {
        live.unsubscribe(id);
        reject(message);
      },
    });
  });
}

export function mount(main, { mode, params }) {
  const editing = mode === 'edit';
  const id = editing ? Number(params[0]) : null;
  if (!session.user || !session.has('seller')) {
    replace(main, h('h1', {}, editing ? 'Edit auction' : 'Sell something'),
      h('p', {}, session.user ? 'Selling needs the seller role.' : h('a', { href: `/signin?next=${location.pathname}` }, 'Sign in'),
        session.user ? '' : ' with a seller account to sell.'));
    return null;
  }

  const title = field('title', 'Title', { required: true, maxlength: 200 });
  const description = field('description', 'Description', { tag: 'textarea', rows: 4, maxlength: 8192 });
  const currency = h('select', { id: 'currency', name: 'currency' }, CURRENCIES.map((code) => h('option', { value: code }, code)));
  const starting = field('starting_price', 'Starting price', { inputmode: 'decimal', required: true });
  const incrementEbay = h('input', { type: 'radio', name: 'increment', id: 'increment-ebay', value: 'ebay', checked: true });
  const incrementFixed = h('input', { type: 'radio', name: 'increment', id: 'increment-fixed', value: 'fixed' });
  const step = field('increment_step', 'Fixed step', { inputmode: 'decimal' });
  const reserve = field('reserve_price', 'Reserve price (optional)', { inputmode: 'decimal' },
    'The lowest price you accept. Bidders only see whether it is met.');
  const buyNow = field('buy_now_price', 'Buy it now price (optional)', { inputmode: 'decimal' });
  const startNow = h('input', { type: 'checkbox', id: 'start-now', checked: true });
  const start = field('start', `Start (${zone})`, { type: 'datetime-local', disabled: true });
  const end = field('end', `End (${zone})`, { type: 'datetime-local', required: true });
  const softClose = h('input', { type: 'checkbox', id: 'soft-close', checked: true });
  const window_ = field('soft_window', 'Window: minutes before the end', { type: 'number', min: 1, max: 60, value: 2 });
  const extension = field('soft_extension', 'Extension: minutes added per bid', { type: 'number', min: 1, max: 60, value: 2 });
  const error = h('p', { class: 'form-error', id: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', id: 'submit' }, editing ? 'Save changes' : 'Create auction');
  const now = live.serverNowUs();
  end.input.value = toLocalInput(now + 7 * DAY_US);
  start.input.value = toLocalInput(now);
  startNow.addEventListener('change', () => {
    start.input.disabled = startNow.checked;
  });

  const form = h('form', { class: 'stack card', novalidate: true, id: 'auction-form' },
    title.wrap, description.wrap,
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'currency' }, 'Currency'), currency),
      starting.wrap),
    h('fieldset', {}, h('legend', {}, 'Bid increment'),
      h('label', { class: 'check', for: 'increment-ebay' }, incrementEbay, 'eBay table (grows with the price)'),
      h('label', { class: 'check', for: 'increment-fixed' }, incrementFixed, 'A fixed step'),
      step.wrap),
    h('div', { class: 'row' }, reserve.wrap, buyNow.wrap),
    h('fieldset', {}, h('legend', {}, 'When'),
      h('label', { class: 'check', for: 'start-now' }, startNow, 'Start now'),
      h('div', { class: 'row' }, start.wrap, end.wrap)),
    h('fieldset', {}, h('legend', {}, 'Soft close'),
      h('label', { class: 'check', for: 'soft-close' }, softClose, 'Extend the end when a bid arrives near it'),
      h('div', { class: 'row' }, window_.wrap, extension.wrap)),
    error, submit);

  let intent = null;
  let pending = false;

  function collect() {
    const code = currency.value;
    const problems = [];
    const money = (input, required) => {
      if (!input.input.value.trim()) {
        if (required) problems.push([input, 'Enter an amount.']);
        return null;
      }
      const parsed = parseMoney(input.input.value, code);
      if (parsed.error) problems.push([input, parsed.error]);
      return parsed.minor ?? null;
    };
    for (const input of [title, starting, step, reserve, buyNow, start, end, window_, extension]) fieldError(input, null);
    if (!title.input.value.trim()) problems.push([title, 'Give the auction a title.']);
    const body = {
      title: title.input.value.trim(),
      description: description.input.value,
      currency: code,
      starting_price: money(starting, true),
      increment: incrementFixed.checked ? { fixed: money(step, true) } : 'ebay',
      reserve_price: money(reserve, false),
      buy_now_price: money(buyNow, false),
      end_us: fromLocalInput(end.input.value),
    };
    const startUs = startNow.checked ? null : fromLocalInput(start.input.value);
    if (!startNow.checked && startUs === null) problems.push([start, 'Choose when it starts.']);
    if (body.end_us === null) problems.push([end, 'Choose when it ends.']);
    else if (body.end_us <= (startUs ?? live.serverNowUs())) problems.push([end, 'The end must be after the start.']);
    if (softClose.checked) {
      const minutes = (input) => {
        const value = Number(input.input.value);
        if (!Number.isInteger(value) || value < 1 || value > 60) {
          problems.push([input, 'Whole minutes from 1 to 60.']);
          return 1;
        }
        return value;
      };
      body.soft_close = {
        window_secs: minutes(window_) * 60,
        mode: 'add_to_end',
        extension_secs: minutes(extension) * 60,
        total_extension_max_secs: null,
      };
    } else {
      body.soft_close = null;
    }
    return { body, startUs, problems };
  }

  form.addEventListener('input', () => {
    if (error.textContent === 'Check the highlighted fields.' && !form.querySelector('[aria-invalid="true"]')) {
      error.textContent = '';
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (pending) return;
    error.textContent = '';
    const { body, startUs, problems } = collect();
    for (const [input, message] of problems) fieldError(input, message);
    if (problems.length) {
      problems[0][0].input.focus();
      error.textContent = 'Check the highlighted fields.';
      return;
    }
    const signature = JSON.stringify([body, startUs]);
    if (!intent || intent.signature !== signature) {
      // "Start now" is fixed when the intent is made, so a retry sends the same terms.
      intent = { signature, key: newKey(), body: { ...body, start_us: startUs ?? live.serverNowUs() } };
    }
    pending = true;
    submit.disabled = true;
    try {
      const answer = editing
        ? await api('PUT', `/v1/auctions/${id}`, { body: intent.body, key: intent.key })
        : await api('POST', '/v1/auctions', { body: intent.body, key: intent.key });
      intent = null;
      navigate(`/auctions/${answer.auction}`);
    } catch (problem) {
      error.textContent = isUncertain(problem)
        ? `${describe(problem)} Press "${submit.textContent}" again.`
        : describe(problem);
      if (!isUncertain(problem)) intent = null;
    } finally {
      pending = false;
      submit.disabled = false;
    }
  });

  replace(main, h('h1', {}, editing ? 'Edit auction' : 'Sell something'), form);
  if (editing) {
    submit.disabled = true;
    loadListing(id).then((state) => {
      const listing = state.listing;
      if (state.bids.length > 0 || state.closed) {
        error.textContent = describe({ code: state.closed ? 'auction_closed' : 'has_bids' });
        return;
      }
      title.input.value = listing.title;
      description.input.value = listing.description;
      currency.value = listing.currency;
      starting.input.value = minorToInput(listing.starting_price, listing.currency);
      if (listing.increment !== 'ebay' && listing.increment.fixed) {
        incrementFixed.checked = true;
        step.input.value = minorToInput(listing.increment.fixed, listing.currency);
      }
      buyNow.input.value = minorToInput(listing.buy_now_price, listing.currency);
      startNow.checked = false;
      start.input.disabled = false;
      start.input.value = toLocalInput(listing.start_us);
      end.input.value = toLocalInput(listing.scheduled_end_us);
      softClose.checked = Boolean(listing.soft_close);
      if (listing.soft_close) {
        window_.input.value = Math.max(1, Math.round(listing.soft_close.window_us / 60e6));
        extension.input.value = Math.max(1, Math.round(listing.soft_close.by_us / 60e6));
      }
      if (listing.has_reserve) {
        reserve.error.textContent = 'The reserve is never sent back: enter it again to keep one.';
      }
      submit.disabled = false;
      title.input.focus();
    }, (problem) => {
      error.textContent = describe(problem);
    });
  } else {
    title.input.focus();
  }
  return () => {
    if (editing) live.unsubscribe(id);
  };
}
