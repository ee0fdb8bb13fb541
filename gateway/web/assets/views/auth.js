// Sign in and sign up. Input is checked here against the documented rules first (so the
// message is immediate and names the field), and the server's problem codes are shown in
// plain words (bad_credentials, username_taken, rate_limited, ...).

import { signIn, signUp, session } from '../api.js';
import { field, fieldError, h, replace, toast } from '../dom.js';
import { describe } from '../messages.js';
import { live } from '../live.js';
import { navigate } from '../app.js';

const USERNAME = /^[a-z0-9][a-z0-9_.-]{2,31}$/;

function checkUsername(text) {
  const name = text.trim().toLowerCase();
  if (name.length < 3 || name.length > 32) return 'A username has 3 to 32 characters.';
  if (!USERNAME.test(name)) {
    return 'Use letters, digits, "_", "." and "-", starting with a letter or digit.';
  }
  return null;
}

function checkPassword(text) {
  if (text.length < 8) return 'The password needs at least 8 characters.';
  if (text.length > 128) return 'The password has at most 128 characters.';
  return null;
}

function safeNext(query) {
  const next = query.get('next');
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function mount(main, { mode, query }) {
  return mode === 'signup' ? signUpView(main, query) : signInView(main, query);
}

function signInView(main, query) {
  const username = field('username', 'Username', { autocomplete: 'username', required: true, maxlength: 128 });
  const password = field('password', 'Password', { type: 'password', autocomplete: 'current-password', required: true, maxlength: 128 });
  const error = h('p', { class: 'form-error', id: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'stack card', novalidate: true }, username.wrap, password.wrap, error, submit);
  if (session.expired) error.textContent = 'Your session has expired. Sign in again.';
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    fieldError(username, username.input.value.trim() ? null : 'Enter your username.');
    fieldError(password, password.input.value ? null : 'Enter your password.');
    if (!username.input.value.trim() || !password.input.value) return;
    submit.disabled = true;
    try {
      const user = await signIn(username.input.value.trim(), password.input.value);
      live.restart();
      toast(`Welcome back, ${user.display_name}.`, 'good');
      navigate(safeNext(query), { replace: true });
    } catch (problem) {
      error.textContent = describe(problem);
      password.input.select();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main,
    h('h1', {}, 'Sign in'),
    form,
    h('p', {}, 'New here? ', h('a', { href: '/signup' }, 'Create an account')));
  username.input.focus();
}

function signUpView(main, query) {
  const username = field('username', 'Username', { autocomplete: 'username', required: true, maxlength: 128 },
    '3 to 32 characters: letters, digits, "_", "." or "-". Not case-sensitive.');
  const display = field('display_name', 'Display name', { autocomplete: 'nickname', required: true, maxlength: 64 },
    'Shown to other people.');
  const password = field('password', 'Password', { type: 'password', autocomplete: 'new-password', required: true, maxlength: 128 },
    '8 to 128 characters.');
  const seller = h('input', { type: 'checkbox', id: 'seller', name: 'seller' });
  const error = h('p', { class: 'form-error', id: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Create account');
  const form = h('form', { class: 'stack card', novalidate: true },
    username.wrap, display.wrap, password.wrap,
    h('label', { class: 'check', for: 'seller' }, seller, 'I also want to sell'),
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const problems = [
      [username, checkUsername(username.input.value)],
      [display, display.input.value.trim() ? null : 'Enter the name others will see.'],
      [password, checkPassword(password.input.value)],
    ];
    for (const [input, message] of problems) fieldError(input, message);
    const first = problems.find(([, message]) => message);
    if (first) {
      first[0].input.focus();
      return;
    }
    submit.disabled = true;
    const name = username.input.value.trim();
    try {
      await signUp({
        username: name,
        display_name: display.input.value.trim(),
        password: password.input.value,
        roles: seller.checked ? ['bidder', 'seller'] : ['bidder'],
      });
      await signIn(name, password.input.value);
      live.restart();
      toast('Your account is ready.', 'good');
      navigate(safeNext(query), { replace: true });
    } catch (problem) {
      if (problem.code === 'username_taken') fieldError(username, describe(problem));
      if (problem.code === 'invalid_password') fieldError(password, describe(problem));
      error.textContent = describe(problem);
    } finally {
      submit.disabled = false;
    }
  });
  replace(main,
    h('h1', {}, 'Create an account'),
    form,
    h('p', {}, 'Have an account? ', h('a', { href: '/signin' }, 'Sign in')));
  username.input.focus();
}
