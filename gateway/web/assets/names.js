// Display names of users, cached for the page's life. The WebSocket snapshot brings the
// names of an auction's seller and bidders; a user id the page has not seen yet (a new
// bidder, a seller in the list) is asked for in one batched `GET /v1/names?ids=…` per
// animation frame (at most 100 ids a request). Names never change once registered, so the
// cache never goes stale; an id the gateway did not know yet is asked again after a while.

import { api } from './api.js';

const IDS_PER_REQUEST = 100;
const RETRY_UNKNOWN_MS = 5000;
const CACHE_MAX = 5000;

const known = new Map();
const asked = new Map(); // id → time asked (ms), for ids without a name yet
const wanted = new Set();
let flushing = 0;

/** Hears that names arrived (re-render). */
export const nameListeners = new Set();

/** Adds names from a `{ "<id>": "<name>" }` object (a snapshot's `names`). */
export function learnNames(names) {
  if (!names) return;
  let fresh = false;
  for (const [id, name] of Object.entries(names)) {
    const key = Number(id);
    if (known.get(key) !== name) {
      known.set(key, name);
      fresh = true;
    }
    asked.delete(key);
  }
  while (known.size > CACHE_MAX) known.delete(known.keys().next().value);
  if (fresh) for (const listener of nameListeners) listener();
}

/** The display name of `id`, or null while unknown (then it is asked for). */
export function nameOf(id) {
  if (id === null || id === undefined) return null;
  const name = known.get(id);
  if (name !== undefined) return name;
  const at = asked.get(id);
  if (at === undefined || performance.now() - at > RETRY_UNKNOWN_MS) {
    wanted.add(id);
    if (!flushing) flushing = requestAnimationFrame(flush);
  }
  return null;
}

async function flush() {
  flushing = 0;
  const ids = [...wanted].slice(0, IDS_PER_REQUEST);
  for (const id of ids) {
    wanted.delete(id);
    asked.set(id, performance.now());
  }
  if (wanted.size) flushing = requestAnimationFrame(flush);
  if (!ids.length) return;
  try {
    const answer = await api('GET', `/v1/names?ids=${ids.join(',')}`);
    learnNames(answer.names);
  } catch {
    // Unknown for now: the page shows "Bidder #id" and asks again later.
  }
}
