// The HTTP API client and the signed-in session.
//
// The session lives in the gateway's HttpOnly cookies: the page never sees a token and
// stores none (no localStorage). Unsafe requests repeat the readable `martelo_csrf` cookie
// in `X-CSRF-Token` (double submit). A 401 while signed in is answered by one refresh
// (`POST /v1/sessions/refresh`, the refresh cookie) and one retry of the same request with
// the same Idempotency-Key; if the refresh fails the session has expired and the page says
// so. Errors are ApiError with the problem's stable `code`.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? (status === 0 ? 'network' : 'internal');
    this.detail = problem?.detail ?? '';
    this.retryAfter = problem?.retryAfter ?? null;
    // `bid_too_low` carries the minimum the engine accepts now.
    this.minimumBid = typeof problem?.minimum_bid === 'number' ? problem.minimum_bid : null;
  }
}

/** A fresh idempotency key: 128 random bits as a UUID (works outside secure contexts). */
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function cookie(name) {
  for (const pair of document.cookie.split(';')) {
    const [key, ...rest] = pair.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return null;
}

/** The signed-in user (UserJson) or null; listeners hear every change. */
export const session = {
  user: null,
  expired: false,
  // Successful refreshes: the access cookie changed (the socket may need to reconnect).
  rotations: 0,
  listeners: new Set(),
  set(user, { expired = false } = {}) {
    if (expired) {
      // Forget the hint that someone is signed in, so the next page load asks nothing and
      // the "expired" message shows once.
      document.cookie = 'martelo_csrf=; Max-Age=0; Path=/; SameSite=Strict';
    }
    this.user = user;
    this.expired = expired;
    for (const listener of this.listeners) listener(user);
  },
  has(role) {
    return Boolean(this.user?.roles?.includes(role));
  },
};

let refreshing = null;

/** Rotates the session with the refresh cookie; true when it worked. One at a time. */
export function refresh() {
  if (!refreshing) {
    refreshing = raw('POST', '/v1/sessions/refresh', { body: {} })
      .then((answer) => {
        session.rotations += 1;
        session.set(answer.user);
        return true;
      })
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

async function raw(method, path, { body, key } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') {
    const csrf = cookie('martelo_csrf');
    if (csrf) headers['x-csrf-token'] = csrf;
  }
  if (key) headers['idempotency-key'] = key;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, { code: 'network', detail: 'the server could not be reached' });
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const problem = data && typeof data === 'object' ? data : {};
    problem.retryAfter = Number(response.headers.get('retry-after')) || null;
    throw new ApiError(response.status, problem);
  }
  return data;
}

/**
 * Calls the API. `key` is the Idempotency-Key of a change: the caller keeps one per intent,
 * so a retry (here after a refresh, or the caller's own) can never apply it twice.
 */
export async function api(method, path, options = {}) {
  try {
    return await raw(method, path, options);
  } catch (error) {
    const authFailure = error.status === 401
      && (error.code === 'token_expired' || error.code === 'unauthorized');
    if (!authFailure || !session.user || options.noRefresh) throw error;
    if (await refresh()) return raw(method, path, options);
    session.set(null, { expired: true });
    throw new ApiError(401, { code: 'session_expired', detail: 'the session expired' });
  }
}

/** Learns who is signed in (from the cookies), at start-up. */
export async function loadSession() {
  // The CSRF cookie lives as long as the refresh token: without it nobody is signed in,
  // and the page skips a request that would only answer 401.
  if (!cookie('martelo_csrf')) {
    session.set(null);
    return null;
  }
  try {
    const user = await raw('GET', '/v1/me');
    session.set(user);
    return user;
  } catch (error) {
    if (error.status === 401 && (await refresh())) return session.user;
    session.set(null, { expired: error.status === 401 });
    return null;
  }
}

export async function signIn(username, password) {
  const answer = await raw('POST', '/v1/sessions', { body: { username, password } });
  session.set(answer.user);
  return answer.user;
}

export async function signUp(body) {
  return raw('POST', '/v1/accounts', { body });
}

/**
 * Signs out. When the server refuses the token (expired, revoked, suspended) it clears the
 * cookies all the same: that is a sign-out too, not an error. Only an unreachable server
 * (or a CSRF refusal) leaves cookies behind, and then this throws.
 */
export async function signOut() {
  try {
    await raw('DELETE', '/v1/sessions/current');
  } catch (error) {
    if (error.status !== 401 && !(error.status === 403 && error.code !== 'csrf_failed')) throw error;
  } finally {
    session.set(null);
  }
}
