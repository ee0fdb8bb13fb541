// The one WebSocket (`/v1/ws`) of the page: it carries every auction the page watches.
//
// - Resume: each subscription remembers the last seq it applied; after a reconnect it
//   subscribes with `after_seq`, and the server answers `resumed` + the missed events or a
//   fresh snapshot. Events at or below the last seq are dropped (never a duplicate row); an
//   event that skips a seq makes the subscription start over from a snapshot (never a
//   silent gap).
// - Clock: `time`, `snapshot`, `resumed` and `pong` carry the server's time; countdowns use
//   serverNowUs(), never the viewer's clock alone.
// - State for the connection indicator: `live`, `reconnecting`, `offline`. The browser's
//   `offline` event drops the socket at once; `online` reconnects without waiting.
// - Credentials: the access cookie at connect. Sign-in and sign-out restart the socket;
//   close code 4003 (token expired) refreshes the session first; 4001 means suspended.
// - Start-up: boot.js (a classic script that runs before the modules) opens the socket
//   subscribed to the auction in the URL (`?subscribe=`); the first connect() adopts that
//   socket and replays what it received, and the auction page's prefetch() takes that
//   subscription over instead of sending a second one (one that no page takes is ended). Without boot.js the page opens the socket and
//   subscribes itself (`prefetch`). What arrives before the auction page's module has
//   loaded waits in a bounded buffer that the page takes over when it subscribes. So the
//   socket's handshake, the subscription and the server's snapshot read overlap the module
//   loads instead of following them.
// - Marks for the browser tests' first-load breakdown (Performance timeline):
//   `martelo:ws-open` (first open) and `martelo:snapshot` (first snapshot received).

import { refresh, session } from './api.js';

const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 5000];
// The server sends `time` after a second without other frames: 5 s of silence is a dead link.
const SILENCE_MS = 5000;
const METRICS_MAX = 500;
/** Most messages a prefetched subscription keeps for its page; past it, a fresh snapshot. */
const PREFETCH_BUFFER_MAX = 10_000;

function markOnce(name, startTime) {
  if (performance.getEntriesByName(name, 'mark').length > 0) return;
  if (startTime === undefined) performance.mark(name);
  else performance.mark(name, { startTime });
}

/** boot.js's socket, once, unless it has closed already. */
function takeBoot() {
  const boot = window.__marteloBoot;
  window.__marteloBoot = undefined;
  if (!boot || boot.socket.readyState === WebSocket.CLOSED) return null;
  return boot;
}

/**
 * Read by the browser tests: update-latency samples (ms from a WS message to its DOM write)
 * and the number of auction events taken.
 */
export const metrics = { updates: [], events: 0 };
export function recordUpdate(receivedAt) {
  metrics.updates.push(performance.now() - receivedAt);
  if (metrics.updates.length > METRICS_MAX) metrics.updates.shift();
}

class Live {
  constructor() {
    this.socket = null;
    this.subs = new Map();
    this.state = 'connecting';
    this.offsetUs = 0;
    this.attempt = 0;
    this.timer = null;
    this.lastHeard = 0;
    // The auction boot.js subscribed to, until prefetch() takes that subscription over.
    this.bootSubscribed = null;
    this.bootClaimed = null;
    this.stateListeners = new Set();
    this.closeListeners = new Set();
  }

  start() {
    window.addEventListener('online', () => this.reconnectNow());
    window.addEventListener('offline', () => this.goOffline());
    setInterval(() => this.watchdog(), 1000);
    this.connect();
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const boot = takeBoot();
    let socket = boot?.socket;
    // A boot.js subscription belongs to boot.js's socket only.
    this.bootSubscribed = boot?.subscribed ?? null;
    this.bootClaimed = null;
    if (!socket) {
      try {
        socket = new WebSocket(`${scheme}://${location.host}/v1/ws`);
      } catch {
        this.scheduleReconnect();
        return;
      }
    }
    this.socket = socket;
    this.lastHeard = performance.now();
    const opened = (openedAt) => {
      markOnce('martelo:ws-open', openedAt);
      this.attempt = 0;
      this.lastHeard = performance.now();
      this.setState('live');
      // The socket came subscribed to boot.js's auction: a page took it (claimed), or none
      // did, and it ends here.
      const claimed = this.bootClaimed;
      this.bootClaimed = null;
      for (const [auction, sub] of this.subs) {
        if (auction === claimed) continue;
        // A resync whose `unsubscribed` the old socket never delivered: this subscribe is
        // fresh on the new socket (no seq known, so a snapshot comes).
        sub.resync = false;
        this.sendSubscribe(auction, sub);
      }
      if (this.bootSubscribed !== null) {
        this.send({ type: 'unsubscribe', auction: this.bootSubscribed });
        this.bootSubscribed = null;
      }
    };
    socket.onopen = () => {
      if (this.socket !== socket) return;
      opened();
    };
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      this.lastHeard = performance.now();
      this.onMessage(message.data, performance.now());
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.onClose(event);
    };
    if (boot) this.adopt(boot, socket, opened);
  }

  /**
   * Takes over boot.js's socket: once the caller's synchronous start-up has run (app.js
   * calls prefetch() right after start()), what boot.js saw happens here, in order: the
   * open (if it came; otherwise `onopen` above fires later) and the messages received.
   */
  adopt(boot, socket, opened) {
    queueMicrotask(() => {
      if (this.socket !== socket) return;
      if (boot.openedAt !== null) opened(boot.openedAt);
      for (const [data, receivedAt] of boot.messages) this.onMessage(data, receivedAt);
      // Messages were dropped: the page starts over from fresh snapshots.
      if (boot.overflow) this.restart();
    });
  }

  async onClose(event) {
    for (const listener of this.closeListeners) listener(event.code);
    if (event.code === 4003) {
      // The access token expired while the socket was open: rotate, then come back.
      await refresh();
    } else if (event.code === 4001 && session.user) {
      // Suspended: keep showing who is signed in, marked, so the page can say why bids fail.
      session.set({ ...session.user, status: 'suspended' });
    } else if (event.code === 4002) {
      session.set(null, { expired: true });
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    this.setState(navigator.onLine === false ? 'offline' : 'reconnecting');
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    if (this.attempt > BACKOFF_MS.length) this.setState('offline');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }

  reconnectNow() {
    this.attempt = 0;
    if (!this.socket) this.connect();
    else if (this.socket.readyState === WebSocket.OPEN) this.setState('live');
  }

  /**
   * The browser lost the network: an open socket may still look open for a long while (no
   * FIN arrives), so drop it now and resume with `after_seq` once the network is back.
   */
  goOffline() {
    const old = this.socket;
    this.socket = null;
    if (old) old.close(1000);
    this.scheduleReconnect();
  }

  /** Drops the socket when the server has been silent too long (a half-open link). */
  watchdog() {
    if (this.socket && this.socket.readyState === WebSocket.OPEN
      && performance.now() - this.lastHeard > SILENCE_MS) {
      this.restart();
    }
  }

  /** A new socket (after sign-in or sign-out: the credentials changed). */
  restart() {
    const old = this.socket;
    this.socket = null;
    if (old) old.close(1000);
    this.attempt = 0;
    this.setState('reconnecting');
    this.connect();
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /**
   * Watches `auction`; `handler` gets snapshot, resumed, event, notice and error calls. A
   * subscription prefetched at start-up is taken over: its buffered messages go to
   * `handler` first, in order, and no second subscribe is sent.
   */
  subscribe(auction, handler) {
    const early = this.subs.get(auction);
    if (early?.buffer) {
      const buffered = early.buffer;
      early.buffer = null;
      early.handler = handler;
      for (const [kind, message, receivedAt] of buffered) handler[kind]?.(message, receivedAt);
      return;
    }
    const sub = { handler, lastSeq: null, resync: false, buffer: null };
    this.subs.set(auction, sub);
    this.sendSubscribe(auction, sub);
  }

  /**
   * Subscribes to `auction` before its page has loaded: messages wait (at most
   * PREFETCH_BUFFER_MAX; past it the buffer is dropped and a fresh snapshot asked for, as
   * after a gap) until subscribe() takes them.
   */
  prefetch(auction) {
    if (this.subs.has(auction)) return;
    // boot.js subscribed to it already on the adopted socket: take that one over.
    const subscribed = this.bootSubscribed === auction;
    if (subscribed) {
      this.bootSubscribed = null;
      this.bootClaimed = auction;
    }
    const sub = { handler: null, lastSeq: null, resync: false, buffer: [] };
    const keep = (kind) => (message, receivedAt) => {
      if (!sub.buffer) return;
      if (sub.buffer.length >= PREFETCH_BUFFER_MAX) {
        sub.buffer.length = 0;
        this.resync(auction, sub);
        return;
      }
      sub.buffer.push([kind, message, receivedAt]);
    };
    sub.handler = {
      snapshot: keep('snapshot'), resumed: keep('resumed'), event: keep('event'),
      notice: keep('notice'), error: keep('error'),
    };
    this.subs.set(auction, sub);
    if (!subscribed) this.sendSubscribe(auction, sub);
  }

  /** Ends the prefetched subscriptions that no page took (the first page was another). */
  dropPrefetched() {
    for (const [auction, sub] of [...this.subs]) {
      if (sub.buffer) this.unsubscribe(auction);
    }
  }

  /** Starts `sub` over from a snapshot: unsubscribe, then subscribe on `unsubscribed`. */
  resync(auction, sub) {
    sub.resync = true;
    sub.lastSeq = null;
    this.send({ type: 'unsubscribe', auction });
  }

  unsubscribe(auction) {
    if (this.subs.delete(auction)) this.send({ type: 'unsubscribe', auction });
  }

  sendSubscribe(auction, sub) {
    const message = { type: 'subscribe', auction };
    if (sub.lastSeq !== null) message.after_seq = sub.lastSeq;
    this.send(message);
  }

  serverNowUs() {
    return Date.now() * 1000 + this.offsetUs;
  }

  onMessage(text, receivedAt) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof message.server_time_us === 'number') {
      this.offsetUs = message.server_time_us - Date.now() * 1000;
    }
    const sub = message.auction !== undefined ? this.subs.get(message.auction) : undefined;
    switch (message.type) {
      case 'snapshot':
        if (!sub) return;
        markOnce('martelo:snapshot', receivedAt);
        sub.lastSeq = message.seq;
        sub.handler.snapshot(message, receivedAt);
        break;
      case 'resumed':
        sub?.handler.resumed?.(message);
        break;
      case 'event':
        if (!sub || sub.resync) return;
        if (sub.lastSeq !== null && message.seq <= sub.lastSeq) return;
        if (sub.lastSeq !== null && message.seq !== sub.lastSeq + 1) {
          // A hole: start over from a snapshot rather than show a history with a gap.
          this.resync(message.auction, sub);
          return;
        }
        sub.lastSeq = message.seq;
        metrics.events += 1;
        sub.handler.event(message, receivedAt);
        break;
      case 'unsubscribed':
        if (sub?.resync) {
          sub.resync = false;
          this.sendSubscribe(message.auction, sub);
        }
        break;
      case 'notice':
        sub?.handler.notice?.(message);
        break;
      case 'error':
        if (sub) {
          sub.handler.error?.(message);
          if (message.code === 'subscription_failed') {
            setTimeout(() => this.subs.get(message.auction) === sub && this.sendSubscribe(message.auction, sub), 1000);
          }
        }
        break;
      default:
        break;
    }
  }
}

export const live = new Live();
