// The entry point: the client-side router, the header (navigation, who is signed in, the
// connection indicator) and start-up. Each view is a module exporting
// `mount(main, params) → unmount`; the gateway serves index.html for every route below.

import { loadSession, session, signOut } from './api.js';
import { banner, h, replace, toast } from './dom.js';
import { zone } from './format.js';
import { live, metrics } from './live.js';

const ROUTES = [
  [/^\/$/, () => import('./views/list.js')],
  [/^\/signin$/, () => import('./views/auth.js'), 'signin'],
  [/^\/signup$/, () => import('./views/auth.js'), 'signup'],
  [/^\/sell$/, () => import('./views/sell.js'), 'create'],
  [/^\/mine$/, () => import('./views/list.js'), 'mine'],
  [/^\/admin$/, () => import('./views/admin.js')],
  [/^\/admin\/audit$/, () => import('./views/audit.js')],
  [/^\/activity$/, () => import('./views/activity.js')],
  [/^\/auctions\/(\d{1,16})$/, () => import('./views/auction.js')],
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

async function render() {
  const mine = ++generation;
  const main = document.getElementById('main');
  const path = location.pathname;
  const match = ROUTES.map(([pattern, load, mode]) => [pattern.exec(path), load, mode])
    .find(([found]) => found);
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
  // Read by the browser tests: update latencies (ms from a WS message to its DOM write).
  window.__martelo = { metrics };
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
  await loadSession();
  previous = session.user;
  if (session.expired) toast('Your session has expired. Sign in again.', 'bad', 8000);
  live.start();
  render();
}

start();
