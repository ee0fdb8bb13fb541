// Admin: find accounts by username prefix (paged), suspend (with a reason) and reinstate.
// A suspension is applied in the meta group and in every auction group; groups that did
// not confirm are listed and pressing the button again completes them.

import { api, newKey, session } from '../api.js';
import { h, replace } from '../dom.js';
import { when } from '../format.js';
import { describe } from '../messages.js';

export function mount(main) {
  if (!session.has('admin')) {
    replace(main, h('h1', {}, 'Admin'), h('p', {}, 'This page needs the admin role.'));
    return null;
  }
  let stopped = false;
  let next = null;
  let searches = 0; // only the latest search may fill the table (an older one may answer last)
  const prefix = h('input', { id: 'user-prefix', type: 'search', autocomplete: 'off', maxlength: 32 });
  const find = h('button', { type: 'submit', id: 'find-users' }, 'Find');
  const status = h('p', { role: 'status', class: 'muted', id: 'admin-status' });
  const body = h('tbody', { id: 'users' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Show more');

  function row(user) {
    const result = h('p', { class: 'result', role: 'status' });
    let action;
    if (user.status === 'suspended') {
      const button = h('button', { type: 'submit', class: 'secondary' }, 'Reinstate');
      action = h('form', { 'data-user': user.username }, button);
      const key = newKey();
      action.addEventListener('submit', async (event) => {
        event.preventDefault();
        button.disabled = true;
        try {
          const answer = await api('POST', `/v1/users/${user.id}/reinstate`, { body: {}, key });
          report(result, answer, 'Reinstated');
          search(true);
        } catch (error) {
          result.className = 'result error';
          result.textContent = describe(error);
        } finally {
          button.disabled = false;
        }
      });
    } else {
      const reasonId = `reason-${user.id}`;
      const reason = h('input', { id: reasonId, maxlength: 500, placeholder: 'Reason', required: true });
      const button = h('button', { type: 'submit', class: 'danger' }, 'Suspend');
      action = h('form', { 'data-user': user.username },
        h('label', { for: reasonId, class: 'sr-only' }, `Reason for suspending ${user.username}`), reason, button);
      let intent = null;
      action.addEventListener('submit', async (event) => {
        event.preventDefault();
        const text = reason.value.trim();
        if (!text) {
          result.className = 'result error';
          result.textContent = 'Give a reason: it is recorded with the suspension.';
          reason.focus();
          return;
        }
        if (!intent || intent.text !== text) intent = { text, key: newKey() };
        button.disabled = true;
        try {
          const answer = await api('POST', `/v1/users/${user.id}/suspend`, { body: { reason: text }, key: intent.key });
          report(result, answer, 'Suspended');
          if (answer.groups_unconfirmed.length === 0) search(true);
        } catch (error) {
          result.className = 'result error';
          result.textContent = describe(error);
        } finally {
          button.disabled = false;
        }
      });
    }
    return h('tr', { 'data-username': user.username },
      h('td', {}, h('strong', {}, user.username), h('br'), user.display_name),
      h('td', {}, user.roles.join(', ')),
      h('td', { class: 'status' }, user.status === 'suspended' ? `Suspended: ${user.suspended_reason ?? ''}` : 'Active'),
      h('td', {}, when(user.created_at_us)),
      h('td', {}, action, result));
  }

  function report(result, answer, done) {
    if (answer.groups_unconfirmed.length > 0) {
      result.className = 'result error';
      result.textContent = `${done} in the account, but ${answer.groups_unconfirmed.length} group(s) did not confirm: press the button again to finish.`;
    } else {
      result.className = 'result ok';
      result.textContent = `${done}.`;
    }
  }

  async function search(reset) {
    const mine = ++searches;
    if (reset) {
      // Rows of an older search must not be acted on while the new one is on its way.
      next = null;
      replace(body, []);
      more.hidden = true;
    }
    const params = new URLSearchParams({ limit: '50' });
    if (prefix.value.trim()) params.set('prefix', prefix.value.trim().toLowerCase());
    if (next) params.set('after', next);
    status.textContent = 'Searching…';
    try {
      const page = await api('GET', `/v1/users?${params}`);
      if (stopped || mine !== searches) return;
      const rows = page.users.map(row);
      if (reset) replace(body, rows);
      else body.append(...rows);
      next = page.next_after;
      more.hidden = !next;
      status.textContent = body.children.length === 0 ? 'No account matches.' : '';
    } catch (error) {
      if (mine === searches) status.textContent = describe(error);
    }
  }

  const form = h('form', { class: 'filters', role: 'search' },
    h('div', { class: 'search' }, h('label', { for: 'user-prefix' }, 'Username starts with'), prefix), find);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    search(true);
  });
  more.addEventListener('click', () => search(false));
  replace(main,
    h('h1', {}, 'Accounts'),
    form, status,
    h('div', { class: 'table-wrap' },
      h('table', {},
        h('thead', {}, h('tr', {}, ['Account', 'Roles', 'Status', 'Since', 'Action'].map((name) => h('th', { scope: 'col' }, name)))),
        body)),
    h('p', { class: 'more' }, more));
  search(true);
  return () => {
    stopped = true;
  };
}
