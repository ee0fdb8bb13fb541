// The auction page: live state from the WebSocket (snapshot, then every event in seq
// order), rendered at most once per animation frame; the countdown from the server's clock
// and effective end; bids and buy-it-now with one idempotency key per intent; the server's
// verdict once closed; the seller's edit and cancel; an admin's void of a bid, or removal of
// every bid of that bidder.
//
// Events only change `s` and ask for a frame: however many arrive between two frames (a
// hot auction sends ~1,000 a second), the DOM is written once per frame, and the history
// gets the new rows in one prepend. The next minimum bid comes with each price event
// (`minimum_bid`); people are named by display name (names.js), "you" for the viewer.
//
// The page never decides that the auction closed: at zero it says it is waiting for the
// close, and only an `auction_closed` event (or a snapshot with `closed`) ends it.

import { api, newKey, session } from '../api.js';
import { h, replace, setText, toast } from '../dom.js';
import { clock, iso, money, parseMoney, remaining, when, zone } from '../format.js';
import { describe, isUncertain } from '../messages.js';
import { live, recordUpdate } from '../live.js';
import { learnNames, nameListeners, nameOf } from '../names.js';

const HISTORY_ROWS_MAX = 500;
const RETRY_DELAYS_MS = [300, 1000, 2500];
const MINIMUM_REFRESH_MS = 150;
const ANNOUNCE_MS = 2000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Who a user id is, from the viewer's side: "you", the display name, or "Bidder #id" while
 * the name is on its way. */
function person(id) {
  if (id === null || id === undefined) return 'nobody yet';
  if (id === session.user?.id) return 'you';
  return nameOf(id) ?? `Bidder #${id}`;
}
const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);

function verdictText(closed, currency) {
  const me = session.user?.id;
  switch (closed.outcome) {
    case 'sold': {
      const how = closed.via === 'buy_now' ? ' with buy it now' : '';
      if (closed.winner === me) return `You won this auction for ${money(closed.price, currency)}${how}.`;
      return `Sold to ${person(closed.winner)} for ${money(closed.price, currency)}${how}.`;
    }
    case 'unsold':
      return (closed.unsold_reason ?? closed.reason) === 'reserve_not_met'
        ? 'Ended without a sale: the reserve price was not met.'
        : 'Ended without a sale: nobody bid.';
    case 'cancelled':
      return `Cancelled${closed.reason ? `: ${closed.reason}` : '.'}`;
    default:
      return 'Closed.';
  }
}

export function mount(main, { params }) {
  const id = Number(params[0]);
  const s = {
    loaded: false, listing: null, seller: null, seq: 0, price: null, leader: null,
    minimum: null, reserveMet: false, buyNow: null, endUs: 0, bids: [], closed: null,
    extendedFlash: false, epoch: 0, voidedDirty: false, outbid: false, error: null,
    receivedAt: null, marked: false, voidedCount: 0, iBid: false, biddersFor: undefined,
  };
  let frame = 0;
  let stopped = false;

  // --- Elements -------------------------------------------------------------------------
  const title = h('h1', { id: 'title' }, 'Loading…');
  const seller = h('p', { class: 'muted', id: 'seller' });
  const description = h('p', { class: 'desc', id: 'description' });
  const price = h('p', { class: 'price', id: 'price' }, '–');
  const priceLabel = h('p', { class: 'muted', id: 'price-label' }, 'Current price');
  const announce = h('p', { class: 'sr-only', 'aria-live': 'polite', id: 'announce' });
  const leader = h('dd', { id: 'leader' });
  const bidCount = h('dd', { id: 'bid-count' });
  const minimum = h('dd', { id: 'minimum' });
  const reserve = h('dd', { id: 'reserve' });
  const buyNowFact = h('dd', { id: 'buy-now' });
  const countdown = h('p', { class: 'countdown', id: 'countdown', role: 'timer', 'aria-live': 'off' });
  const endsAt = h('p', { class: 'muted', id: 'ends-at' });
  const extended = h('span', { class: 'badge warn', id: 'extended', hidden: true }, 'Extended');
  const standing = h('p', { class: 'standing', id: 'standing', 'aria-live': 'polite' });
  const verdict = h('p', { class: 'verdict', id: 'verdict', role: 'status', hidden: true });
  const history = h('ol', { class: 'history', id: 'history', 'aria-label': 'Bid history, newest first' });
  const historyNote = h('p', { class: 'muted', id: 'history-note' });
  const actions = h('div', { id: 'actions' });
  const bidCard = h('div', { class: 'card', id: 'bid-card' }, actions);
  const owner = h('div', { class: 'owner-actions', id: 'owner-actions' });

  // --- Bid form: one idempotency key per intent -------------------------------------------
  const amountInput = h('input', { id: 'bid-amount', name: 'amount', inputmode: 'decimal', autocomplete: 'off', required: true, 'aria-describedby': 'bid-result' });
  const maxInput = h('input', { id: 'bid-max', name: 'max', inputmode: 'decimal', autocomplete: 'off', 'aria-describedby': 'max-hint' });
  const bidButton = h('button', { type: 'submit', id: 'bid-button' }, 'Place bid');
  const bidResult = h('p', { class: 'result', id: 'bid-result', role: 'status', 'aria-live': 'assertive' });
  const amountLabel = h('label', { for: 'bid-amount' }, 'Your bid');
  const bidForm = h('form', { class: 'stack', id: 'bid-form', novalidate: true },
    h('div', {}, amountLabel, amountInput),
    h('details', {}, h('summary', {}, 'Bid automatically up to a maximum'),
      h('div', {}, h('label', { for: 'bid-max' }, 'Your maximum (optional)'), maxInput,
        h('p', { class: 'hint', id: 'max-hint' }, 'martelo bids for you, one increment at a time, up to this amount. Nobody else sees it.'))),
    bidButton, bidResult);
  const buyButton = h('button', { type: 'button', class: 'secondary', id: 'buy-button', hidden: true });
  const signInPrompt = h('p', {}, h('a', { href: `/signin?next=/auctions/${id}` }, 'Sign in'), ' to bid.');
  const ownPrompt = h('p', { class: 'muted' }, 'You cannot bid on your own auction.');
  let bidIntent = null;
  let buyIntent = null;
  let buyArmed = false;
  let pending = false;

  async function send(path, body, intent, onDone) {
    pending = true;
    bidButton.disabled = true;
    buyButton.disabled = true;
    bidResult.className = 'result pending';
    bidResult.textContent = 'Sending…';
    try {
      for (let attempt = 0; ; attempt += 1) {
        try {
          const answer = await api('POST', path, { body, key: intent.key });
          onDone(answer, null);
          return true;
        } catch (error) {
          if (isUncertain(error) && attempt < RETRY_DELAYS_MS.length) {
            bidResult.textContent = 'Still confirming… (a retry cannot place it twice)';
            await sleep(RETRY_DELAYS_MS[attempt]);
            continue;
          }
          onDone(null, error);
          return !isUncertain(error);
        }
      }
    } finally {
      pending = false;
      bidButton.disabled = false;
      buyButton.disabled = false;
    }
  }

  bidForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (pending || !s.listing) return;
    const currency = s.listing.currency;
    const amount = parseMoney(amountInput.value, currency);
    if (amount.error) {
      amountInput.setAttribute('aria-invalid', 'true');
      bidResult.className = 'result error';
      bidResult.textContent = amount.error;
      amountInput.focus();
      return;
    }
    amountInput.removeAttribute('aria-invalid');
    let max = null;
    if (maxInput.value.trim()) {
      const parsed = parseMoney(maxInput.value, currency);
      if (parsed.error) {
        bidResult.className = 'result error';
        bidResult.textContent = `Maximum: ${parsed.error}`;
        maxInput.focus();
        return;
      }
      max = parsed.minor;
    }
    if (!bidIntent || bidIntent.amount !== amount.minor || bidIntent.max !== max) {
      bidIntent = { amount: amount.minor, max, key: newKey() };
    }
    const body = max === null ? { amount: amount.minor } : { amount: amount.minor, max };
    const settled = await send(`/v1/auctions/${id}/bids`, body, bidIntent, (answer, error) => {
      if (answer) {
        bidResult.className = 'result ok';
        bidResult.textContent = answer.leading
          ? `Bid accepted: you are winning at ${money(answer.price, currency)}.`
          : `Bid accepted, but another bidder's maximum is higher: the price is now ${money(answer.price, currency)}.`;
        s.outbid = !answer.leading;
        // Placed: a stale maximum left in the form must not ride along with the next bid.
        amountInput.value = '';
        maxInput.value = '';
        schedule();
      } else if (isUncertain(error)) {
        bidResult.className = 'result error';
        bidResult.textContent = `${describe(error)} Press "Place bid" again to retry safely.`;
      } else if (error.code === 'bid_too_low' && error.minimumBid !== null) {
        // The refusal names the minimum the server holds just after it.
        bidResult.className = 'result error';
        bidResult.textContent = `Your bid is below the minimum bid of ${money(error.minimumBid, currency)}.`;
        if (error.minimumBid > (s.minimum ?? 0)) s.minimum = error.minimumBid;
        schedule();
      } else if (error.code === 'bid_too_low') {
        // A refusal without the minimum (the server could not read it): read the auction
        // again and name the minimum the server holds now.
        bidResult.className = 'result error';
        const refusal = 'Your bid is below the minimum bid.';
        bidResult.textContent = refusal;
        api('GET', `/v1/auctions/${id}`).then((read) => {
          if (stopped || bidResult.textContent !== refusal) return;
          if (read.seq >= s.seq) s.minimum = read.next_minimum_bid;
          bidResult.textContent = `Your bid is below the minimum bid of ${money(read.next_minimum_bid, currency)}.`;
          schedule();
        }).catch(() => {});
      } else {
        bidResult.className = 'result error';
        bidResult.textContent = `Bid refused: ${describe(error)}`;
      }
    });
    if (settled) bidIntent = null;
  });

  buyButton.addEventListener('click', async () => {
    if (pending || !s.listing || s.buyNow === null) return;
    const currency = s.listing.currency;
    if (!buyArmed) {
      buyArmed = true;
      buyButton.textContent = `Confirm: buy now for ${money(s.buyNow, currency)}`;
      return;
    }
    buyArmed = false;
    buyIntent ??= { key: newKey() };
    const settled = await send(`/v1/auctions/${id}/buy`, {}, buyIntent, (answer, error) => {
      bidResult.className = answer ? 'result ok' : 'result error';
      bidResult.textContent = answer
        ? `You bought it for ${money(answer.price, currency)}.`
        : `Purchase refused: ${describe(error)}`;
    });
    if (settled) buyIntent = null;
    schedule();
  });

  // --- Owner actions ----------------------------------------------------------------------
  const cancelReason = h('input', { id: 'cancel-reason', maxlength: 500, placeholder: 'Reason (required for admins)', 'aria-label': 'Reason for cancelling' });
  const cancelButton = h('button', { type: 'submit', class: 'danger', id: 'cancel-button' }, 'Cancel auction');
  const ownerResult = h('p', { class: 'result', role: 'status' });
  const editLink = h('a', { href: `/auctions/${id}/edit`, class: 'button secondary', id: 'edit-link' }, 'Edit');
  const cancelForm = h('form', { class: 'owner-actions', id: 'cancel-form' }, cancelReason, cancelButton);
  let cancelIntent = null;
  cancelForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (pending) return;
    const reason = cancelReason.value.trim();
    if (!cancelIntent || cancelIntent.reason !== reason) cancelIntent = { reason, key: newKey() };
    cancelButton.disabled = true;
    try {
      await api('POST', `/v1/auctions/${id}/cancel`, { body: reason ? { reason } : {}, key: cancelIntent.key });
      ownerResult.className = 'result ok';
      ownerResult.textContent = 'The auction is cancelled.';
      cancelIntent = null;
    } catch (error) {
      ownerResult.className = 'result error';
      ownerResult.textContent = describe(error);
      if (!isUncertain(error)) cancelIntent = null;
    } finally {
      cancelButton.disabled = false;
    }
  });

  // --- Admin: void a bid, with a reason ----------------------------------------------------
  const voidTarget = h('p', { id: 'void-target' });
  const voidReason = h('input', { id: 'void-reason', maxlength: 500, required: true, autocomplete: 'off' });
  const voidButton = h('button', { type: 'submit', class: 'danger', id: 'void-button' }, 'Void bid');
  const removeButton = h('button', { type: 'submit', class: 'danger', id: 'remove-bidder-button' }, 'Remove all their bids');
  const voidClose = h('button', { type: 'button', class: 'secondary', id: 'void-close' }, 'Keep it');
  const voidResult = h('p', { class: 'result', id: 'void-result', role: 'status', 'aria-live': 'polite' });
  const voidForm = h('form', { class: 'stack void-form', id: 'void-form', hidden: true, novalidate: true, 'aria-labelledby': 'void-target' },
    voidTarget,
    h('div', {}, h('label', { for: 'void-reason' }, 'Reason (bidders see it)'), voidReason),
    h('div', { class: 'owner-actions' }, voidButton, removeButton, voidClose), voidResult);
  let voidIntent = null;
  function openVoid(bidId) {
    const bid = s.bids.find((candidate) => candidate.id === bidId);
    if (!bid || !s.listing) return;
    voidForm.hidden = false;
    voidForm.dataset.bid = String(bidId);
    setText(voidTarget, `Void the bid of ${money(bid.amount, s.listing.currency)} by ${capital(person(bid.bidder))}?`);
    voidResult.textContent = '';
    voidReason.focus();
  }
  voidClose.addEventListener('click', () => {
    voidForm.hidden = true;
    voidIntent = null;
  });
  history.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-void]');
    if (button) openVoid(Number(button.dataset.void));
  });
  voidForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const bidId = Number(voidForm.dataset.bid);
    // "Remove all their bids" voids every standing bid of the bid's bidder (a raise of their
    // maximum included), where voiding one bid would leave the others in force.
    const all = event.submitter === removeButton;
    const bid = s.bids.find((candidate) => candidate.id === bidId);
    if (!bid) return;
    const reason = voidReason.value.trim();
    if (!reason) {
      voidReason.setAttribute('aria-invalid', 'true');
      voidResult.className = 'result error';
      voidResult.textContent = 'Give a reason: the bidders see it.';
      voidReason.focus();
      return;
    }
    voidReason.removeAttribute('aria-invalid');
    if (!voidIntent || voidIntent.bidId !== bidId || voidIntent.reason !== reason || voidIntent.all !== all) {
      voidIntent = { bidId, reason, all, key: newKey() };
    }
    voidButton.disabled = true;
    removeButton.disabled = true;
    voidResult.className = 'result pending';
    voidResult.textContent = 'Sending…';
    try {
      const path = all ? `/v1/auctions/${id}/bidders/${bid.bidder}/remove` : `/v1/auctions/${id}/bids/${bidId}/void`;
      await api('POST', path, { body: { reason }, key: voidIntent.key });
      voidResult.className = 'result ok';
      voidResult.textContent = all
        ? `Every bid of ${capital(person(bid.bidder))} is voided; the price is recomputed without them.`
        : 'The bid is voided; the price is recomputed without it.';
      voidReason.value = '';
      voidIntent = null;
    } catch (error) {
      voidResult.className = 'result error';
      voidResult.textContent = describe(error);
      if (!isUncertain(error)) voidIntent = null;
    } finally {
      voidButton.disabled = false;
      removeButton.disabled = false;
    }
  });

  // --- State from the server --------------------------------------------------------------
  let minimumTimer = null;
  function refreshMinimum(attempt = 0) {
    clearTimeout(minimumTimer);
    minimumTimer = setTimeout(async () => {
      try {
        // A lease read first; if it lags the events already shown, ask again linearizably
        // (never keep a minimum older than the price on screen).
        const consistency = attempt === 0 ? 'lease' : 'linearizable';
        const read = await api('GET', `/v1/auctions/${id}?consistency=${consistency}`);
        if (stopped) return;
        if (read.seq < s.seq) {
          if (attempt < 3) refreshMinimum(attempt + 1);
          return;
        }
        {
          s.minimum = read.next_minimum_bid;
          s.buyNow = read.buy_now_price;
          schedule();
        }
      } catch {
        // The next price change asks again; the engine checks the minimum regardless.
      }
    }, MINIMUM_REFRESH_MS);
  }

  /**
   * The minimum after a price event: the server sends it with the event. A frame without it
   * (a resumed socket whose session has not read the listing) asks the server. Buy it now
   * may disappear with a price change (the engine decides), so while it shows, read it.
   */
  function takeMinimum(event) {
    if (typeof event.minimum_bid === 'number') {
      s.minimum = event.minimum_bid;
      if (s.buyNow !== null) refreshMinimum();
    } else {
      refreshMinimum();
    }
  }

  function applySnapshot(message, receivedAt) {
    const state = message.state;
    learnNames(message.names);
    s.loaded = true;
    s.listing = state.listing;
    s.seller = state.seller;
    s.seq = message.seq;
    s.price = state.price;
    s.leader = state.leading_bidder;
    s.minimum = state.minimum_bid;
    s.reserveMet = state.reserve_met;
    s.buyNow = state.buy_now_price;
    s.endUs = message.effective_end_us ?? state.effective_end_us;
    s.bids = state.bids.map((bid, index) => ({ id: index, bidder: bid.bidder, amount: bid.amount, atUs: bid.at_us, voided: bid.voided }));
    s.voidedCount = s.bids.filter((bid) => bid.voided).length;
    s.biddersFor = undefined; // recompute whether the viewer bid
    s.closed = state.closed;
    s.epoch += 1;
    s.error = null;
    s.receivedAt ??= receivedAt;
    schedule();
  }

  function applyEvent(message, receivedAt) {
    const event = message.event;
    s.seq = message.seq;
    switch (event.kind) {
      case 'auction_created':
        s.seller = event.seller;
        s.listing = event.listing;
        break;
      case 'auction_edited':
        s.listing = event.listing;
        s.endUs = event.listing.scheduled_end_us;
        s.buyNow = event.listing.buy_now_price;
        if (s.price === null) s.minimum = event.listing.starting_price;
        break;
      case 'bid_placed':
        s.bids.push({ id: event.bid_id, bidder: event.bidder, amount: event.amount, atUs: message.timestamp_us, voided: false });
        if (event.bidder === session.user?.id) s.iBid = true;
        break;
      case 'price_changed':
        s.price = event.price;
        s.leader = event.leader;
        s.reserveMet = event.reserve_met;
        if (event.leader === session.user?.id) s.outbid = false;
        takeMinimum(event);
        break;
      case 'outbid':
        if (event.bidder === session.user?.id) {
          s.outbid = true;
          // One live notice per auction: a new outbid replaces it, never a stack.
          toast(`You were outbid on "${s.listing?.title ?? 'this auction'}".`, 'bad', 5000, `outbid-${id}`);
        }
        break;
      case 'auction_extended':
        // Said (and flashed) once per frame in render(): under a hot soft close every bid
        // extends the end.
        s.endUs = event.effective_end_us;
        s.extendedFlash = true;
        break;
      case 'bid_voided': {
        const bid = s.bids.find((candidate) => candidate.id === event.bid_id);
        if (bid && !bid.voided) {
          bid.voided = true;
          bid.reason = event.reason;
          s.voidedCount += 1;
        }
        s.voidedDirty = true;
        setText(announce, `A bid was voided${event.reason ? `: ${event.reason}` : ''}.`);
        break;
      }
      case 'price_cleared':
        s.price = null;
        s.leader = null;
        s.reserveMet = false;
        takeMinimum(event);
        break;
      case 'auction_closed':
        s.closed = { ...event, at_us: message.timestamp_us };
        s.voidedDirty = true; // rows lose their void buttons
        voidForm.hidden = true;
        break;
      default:
        break;
    }
    s.receivedAt ??= receivedAt;
    schedule();
  }

  // --- Rendering, once per animation frame ------------------------------------------------
  function schedule() {
    if (!frame && !stopped) frame = requestAnimationFrame(render);
  }

  let renderedEpoch = -1;
  let renderedBids = 0;
  let lastPriceText = '';

  function bidRow(bid, currency) {
    const mine = bid.bidder === session.user?.id;
    const voidable = !bid.voided && !s.closed && session.has('admin');
    return h('li', { class: `${mine ? 'mine' : ''} ${bid.voided ? 'voided' : ''}`.trim(), 'data-bid': bid.id },
      h('span', { class: 'who' }, capital(person(bid.bidder))),
      h('span', { class: 'amount' }, money(bid.amount, currency), bid.voided ? ' (voided)' : ''),
      h('time', { datetime: iso(bid.atUs) }, clock(bid.atUs)),
      bid.voided && bid.reason ? h('span', { class: 'void-reason' }, `Voided: ${bid.reason}`) : null,
      voidable ? h('button', { type: 'button', class: 'link void', 'data-void': bid.id,
        'aria-label': `Void the bid of ${money(bid.amount, currency)} by ${person(bid.bidder)}` }, 'Void…') : null);
  }

  function renderHistory(currency) {
    if (renderedEpoch !== s.epoch || s.voidedDirty) {
      renderedEpoch = s.epoch;
      s.voidedDirty = false;
      const rows = s.bids.slice(-HISTORY_ROWS_MAX).reverse().map((bid) => bidRow(bid, currency));
      replace(history, rows);
      renderedBids = s.bids.length;
    } else if (renderedBids < s.bids.length) {
      const fresh = s.bids.slice(renderedBids).reverse().map((bid) => bidRow(bid, currency));
      history.prepend(...fresh);
      renderedBids = s.bids.length;
      while (history.children.length > HISTORY_ROWS_MAX) history.lastElementChild.remove();
    }
    setText(historyNote, s.bids.length === 0 ? 'No bids yet.'
      : s.bids.length > HISTORY_ROWS_MAX ? `Showing the latest ${HISTORY_ROWS_MAX} of ${s.bids.length} bids.` : '');
  }

  function render() {
    frame = 0;
    if (stopped || !s.listing) return;
    const { currency } = s.listing;
    const me = session.user;
    setText(title, s.listing.title);
    document.title = `${s.listing.title}: martelo`;
    const sellerName = s.seller === me?.id ? null : nameOf(s.seller) ?? `Seller #${s.seller}`;
    if (seller.dataset.name !== String(sellerName)) {
      seller.dataset.name = String(sellerName);
      if (sellerName === null) replace(seller, 'You are the seller.');
      else replace(seller, 'Sold by ', sellerName, ' · ', h('a', { href: `/?seller=${s.seller}`, id: 'seller-link' }, 'more from this seller'));
    }
    setText(description, s.listing.description || '');
    const priceText = money(s.price ?? s.listing.starting_price, currency);
    setText(price, priceText);
    setText(priceLabel, s.price === null ? 'Starting price' : 'Current price');
    setText(leader, s.price === null ? 'No bids yet' : capital(person(s.leader)));
    const validBids = s.bids.length - s.voidedCount;
    setText(bidCount, String(validBids));
    setText(minimum, s.closed ? '–' : money(s.minimum, currency));
    setText(reserve, !s.listing.has_reserve ? 'No reserve' : s.reserveMet ? 'Reserve met' : 'Reserve not met');
    setText(buyNowFact, s.buyNow === null || s.closed ? 'Not available' : money(s.buyNow, currency));
    setText(amountLabel, `Your bid (${currency})`);
    if (!amountInput.value && document.activeElement !== amountInput && s.minimum) amountInput.placeholder = `${money(s.minimum, currency)} or more`;

    const winning = me && s.leader === me.id && s.price !== null;
    if (s.biddersFor !== me?.id) {
      s.biddersFor = me?.id;
      s.iBid = Boolean(me) && s.bids.some((bid) => bid.bidder === me.id);
    }
    const iBid = s.iBid;
    if (s.closed) setText(standing, '');
    else if (winning) setText(standing, 'You are winning.');
    else if (iBid && (s.outbid || s.leader !== me.id)) setText(standing, 'You were outbid.');
    else setText(standing, '');
    standing.className = `standing ${winning ? 'winning' : standing.textContent ? 'outbid' : ''}`;

    if (priceText !== lastPriceText) {
      lastPriceText = priceText;
      sayPrice(`${s.price === null ? 'Starting price' : 'Price'} ${priceText}.${winning ? ' You are winning.' : ''}`);
    }

    // Actions: the bid form, buy it now, or why not.
    const seller_ = me && s.seller === me.id;
    let actionNodes;
    if (s.closed) {
      actionNodes = [];
    } else if (!me) {
      actionNodes = [signInPrompt];
    } else if (seller_) {
      actionNodes = [ownPrompt];
    } else {
      actionNodes = [bidForm, buyButton];
    }
    if (actions.childNodes.length !== actionNodes.length || actionNodes.some((node, i) => actions.childNodes[i] !== node)) {
      replace(actions, actionNodes);
    }
    bidCard.hidden = actionNodes.length === 0;
    buyButton.hidden = s.buyNow === null || s.closed !== null;
    if (!buyArmed && s.buyNow !== null) setText(buyButton, `Buy it now for ${money(s.buyNow, currency)}`);

    verdict.hidden = !s.closed;
    if (s.closed) {
      setText(verdict, verdictText(s.closed, currency));
      verdict.className = `verdict ${s.closed.outcome}`;
    }

    const canManage = me && (seller_ || session.has('admin')) && !s.closed;
    const ownerNodes = canManage ? [validBids === 0 && s.bids.length === 0 ? editLink : null, cancelForm, ownerResult] : [];
    if (owner.childNodes.length !== ownerNodes.filter(Boolean).length) replace(owner, ownerNodes);

    renderHistory(currency);
    if (s.extendedFlash) {
      s.extendedFlash = false;
      setText(announce, `Soft close: the end moved to ${when(s.endUs)}.`);
      countdown.classList.remove('extended');
      void countdown.offsetWidth; // restart the animation
      countdown.classList.add('extended');
    }
    tick();
    if (!s.marked) {
      s.marked = true;
      performance.mark('martelo:auction-rendered');
    }
    if (s.receivedAt !== null) {
      recordUpdate(s.receivedAt);
      s.receivedAt = null;
    }
  }

  /**
   * Announces the price to screen readers at most every ANNOUNCE_MS (the latest one wins): a
   * hot auction changes it dozens of times a second, and a live region that never stops
   * talking says nothing.
   */
  let lastSaidAt = -Infinity;
  let sayTimer = null;
  let toSay = '';
  function sayPrice(text) {
    toSay = text;
    if (sayTimer) return;
    const wait = Math.max(0, lastSaidAt + ANNOUNCE_MS - performance.now());
    sayTimer = setTimeout(() => {
      sayTimer = null;
      lastSaidAt = performance.now();
      setText(announce, toSay);
    }, wait);
  }

  /** The countdown: cheap, every 200 ms, from the server's clock. */
  function tick() {
    if (!s.listing) return;
    const now = live.serverNowUs();
    const scheduledEnd = s.listing.scheduled_end_us;
    extended.hidden = !(s.endUs > scheduledEnd);
    if (s.endUs > scheduledEnd) setText(extended, `Extended by ${remaining(s.endUs - scheduledEnd)}`);
    setText(endsAt, `${s.closed ? 'Ended' : 'Ends'} ${when(s.closed?.at_us ?? s.endUs)} (${zone})`);
    let text;
    if (s.closed) text = 'Closed';
    else if (now < s.listing.start_us) text = `Opens in ${remaining(s.listing.start_us - now)}`;
    else if (now < s.endUs) text = `${remaining(s.endUs - now)} left`;
    else text = 'Ending… waiting for the close';
    setText(countdown, text);
    countdown.classList.toggle('soon', !s.closed && s.endUs - now < 60e6);
  }

  // --- Layout and subscription ------------------------------------------------------------
  replace(main,
    h('p', {}, h('a', { href: '/' }, '← All auctions')),
    h('div', { class: 'auction' },
      h('section', { class: 'stack', 'aria-labelledby': 'title' },
        title, seller, description, verdict,
        h('div', { class: 'card price-box' },
          priceLabel, price, announce, standing,
          h('dl', { class: 'facts' },
            h('dt', {}, 'Leader'), leader,
            h('dt', {}, 'Bids'), bidCount,
            h('dt', {}, 'Next minimum bid'), minimum,
            h('dt', {}, 'Reserve'), reserve,
            h('dt', {}, 'Buy it now'), buyNowFact)),
        h('div', { class: 'card' }, h('div', {}, countdown, ' ', extended), endsAt),
        bidCard,
        owner),
      h('section', { class: 'card', 'aria-labelledby': 'history-title' },
        h('h2', { id: 'history-title' }, 'Bid history'), voidForm, historyNote, history)));

  const handler = {
    snapshot: applySnapshot,
    resumed: () => {},
    event: applyEvent,
    notice: () => {},
    error: (message) => {
      if (message.code === 'auction_not_found') {
        replace(main, h('h1', {}, 'No such auction'), h('p', {}, h('a', { href: '/' }, 'See the auctions')));
      }
    },
  };
  live.subscribe(id, handler);
  const ticker = setInterval(tick, 200);
  // Who is signed in (void buttons, "you") and names arriving change every row.
  const onSession = () => {
    s.voidedDirty = true;
    schedule();
  };
  session.listeners.add(onSession);
  nameListeners.add(onSession);
  return () => {
    stopped = true;
    cancelAnimationFrame(frame);
    clearInterval(ticker);
    clearTimeout(minimumTimer);
    clearTimeout(sayTimer);
    session.listeners.delete(onSession);
    nameListeners.delete(onSession);
    live.unsubscribe(id);
  };
}
