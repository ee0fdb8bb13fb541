// The entry point: the client-side router, the header (navigation, who is signed in, the
// connection indicator) and start-up. Each view is a module exporting
// `mount(main, params) → unmount`; the gateway serves index.html for every route below.
//
// Start-up runs its slow steps at once, not one after another: the first route's view
// module (which the gateway also names in a modulepreload), the WebSocket and, on an
// auction's page, its subscription (live.js keeps what arrives until the view takes it),
// and who is signed in. Only the first render waits for the session, since what a view
// shows depends on it. If reading the session rotated the access cookie, the socket (opened
// with the old one) reconnects.

import { loadSession, session, signOut } from './api.js';
import { banner, h, replace, toast } from './dom.js';
import { zone } from './format.js';
import { live, metrics } from './live.js';

// The auction page's route: at start-up its auction is subscribed to before the view loads.
const AUCTION_ROUTE = /^\/auctions\/(\d{1,16})$/;

const ROUTES = [
  [/^\/$/, () => import('./views/list.js')],
  [/^\/signin$/, () => import('./views/auth.js'), 'signin'],
  [/^\/signup$/, () => import('./views/auth.js'), 'signup'],
  [/^\/sell$/, () => import('./views/sell.js'), 'create'],
  [/^\/mine$/, () => import('./views/list.js'), 'mine'],
  [/^\/admin$/, () => import('./views/admin.js')],
  [/^\/admin\/audit$/, () => import('./views/audit.js')],
  [/^\/activity$/, () => import('./views/activity.js')],
  [AUCTION_ROUTE, () => import('./views/auction.js')],
  [/^\/auctions\/(\d{1,16})\/edit$/, () => import('./views/sell.js'), 'edit'],
];

let unmount = null;
let generation = 0;

/** Goes to `path` inside the app (no reload). */
export function navigate(path, { replace: replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

function route(path) {
  return ROUTES.map(([pattern, load, mode]) => [pattern.exec(path), load, mode])
    .find(([found]) => found);
}

async function render() {
  const mine = ++generation;
  const main = document.getElementById('main');
  const match = route(location.pathname);
  if (unmount) {
    try {
      unmount();
    } catch (error) {
      console.error(error);
    }
    unmount = null;
  }
  renderNav();
  if (!match) {
    replace(main, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/' }, 'See the auctions')));
    return;
  }
  const [found, load, mode] = match;
  try {
    const view = await load();
    if (mine !== generation) return;
    unmount = view.mount(main, { params: found.slice(1), mode, query: new URLSearchParams(location.search) }) ?? null;
    // A start-up subscription that this view did not take is not needed.
    live.dropPrefetched();
  } catch (error) {
    console.error(error);
    replace(main, h('h1', {}, 'This page failed to load'), h('p', {}, 'Reload the page to try again.'));
  }
}

function link(href, text) {
  const current = location.pathname === href ? 'page' : null;
  return h('a', { href, 'aria-current': current }, text);
}

function renderNav() {
  const nav = document.getElementById('nav');
  const user = session.user;
  const items = [link('/', 'Auctions')];
  if (user && session.has('seller')) items.push(link('/sell', 'Sell'), link('/mine', 'My auctions'));
  if (user) items.push(link('/activity', 'My bids'));
  if (user && session.has('admin')) items.push(link('/admin', 'Admin'), link('/admin/audit', 'Audit'));
  if (user) {
    items.push(
      h('span', { class: 'who' }, 'Signed in as ', h('strong', {}, user.display_name)),
      h('button', { type: 'button', class: 'secondary', id: 'sign-out', onclick: onSignOut }, 'Sign out'),
    );
  } else {
    items.push(h('span', { class: 'who' }), link('/signin', 'Sign in'), link('/signup', 'Sign up'));
  }
  replace(nav, items);
}

async function onSignOut() {
  try {
    await signOut();
    toast('You are signed out.');
  } catch {
    toast('Signed out on this page; the server could not be reached.', 'bad');
  }
  live.restart();
  navigate('/');
}

const STATE_TEXT = { live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };

function showConnection(state) {
  const element = document.getElementById('connection');
  element.dataset.state = state;
  element.querySelector('.label').textContent = STATE_TEXT[state] ?? state;
  element.title = state === 'live' ? 'Live updates are on' : 'Live updates are paused; they resume by themselves';
}

function onLinkClick(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey
    || event.shiftKey || event.altKey) return;
  const anchor = event.target.closest('a[href]');
  if (!anchor || anchor.target || anchor.hasAttribute('download')) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
}

async function start() {
  performance.mark('martelo:app-start');
  // Read by the browser tests: update latencies (ms from a WS message to its DOM write).
  window.__martelo = { metrics };
  // The first view's module loads while the session is read (render() then finds it in the
  // module map); a failure shows when render() imports it again.
  route(location.pathname)?.[1]().catch(() => {});
  document.getElementById('zone').textContent = `Times are shown in your time zone, ${zone}.`;
  document.addEventListener('click', onLinkClick);
  window.addEventListener('popstate', render);
  live.stateListeners.add(showConnection);
  live.closeListeners.add((code) => {
    if (code === 4002) toast('You were signed out.', 'bad');
  });
  let previous = null;
  session.listeners.add((user) => {
    renderNav();
    banner(user?.status === 'suspended'
      ? 'Your account is suspended: you can watch auctions, but your bids are refused.'
      : null);
    if (!user && previous && session.expired) {
      toast('Your session has expired. Sign in again.', 'bad', 8000);
    }
    previous = user;
  });
  live.start();
  const auction = AUCTION_ROUTE.exec(location.pathname);
  if (auction) live.prefetch(Number(auction[1]));
  const rotations = session.rotations;
  const hadSession = document.cookie.includes('martelo_csrf=');
  await loadSession();
  // The socket connected with the cookies of before: after a refresh (or with a session
  // that turned out expired) it reconnects with the current ones.
  if (session.rotations !== rotations || (hadSession && !session.user)) live.restart();
  previous = session.user;
  if (session.expired) toast('Your session has expired. Sign in again.', 'bad', 8000);
  render();
}

start();
