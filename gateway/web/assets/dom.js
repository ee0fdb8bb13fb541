// Tiny DOM helpers: element creation without innerHTML (no HTML injection from data),
// toasts, and the page banner.

/**
 * Creates an element. `attrs` keys starting with "on" add listeners; `class`, `for`,
 * `hidden`, aria-* and data-* are set as attributes; children may be strings or nodes.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), value);
    } else if (key === 'text') {
      element.textContent = value;
    } else if (value === true) {
      element.setAttribute(key, '');
    } else {
      element.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces the children of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren(...children.flat().filter((child) => child != null && child !== false));
}

/** Sets text only when it changed (cheap to call every frame). */
export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/**
 * Shows a short message in the corner; `kind` is '', 'good' or 'bad'. A toast with a `key`
 * replaces the one showing with the same key (one live notice per subject, never a stack),
 * and its time starts again.
 */
export function toast(text, kind = '', ms = 5000, key = null) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const old = key ? [...box.children].find((child) => child.dataset.key === key) : null;
  if (old) old.remove();
  const item = h('div', { class: `toast ${kind}`, 'data-key': key }, text);
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => item.remove(), ms);
}

/** Shows (or, with null, hides) the banner under the header. */
export function banner(text) {
  const element = document.getElementById('banner');
  if (!element) return;
  element.hidden = !text;
  element.textContent = text ?? '';
}

/** A labelled input with its error line; returns { wrap, input, error }. */
export function field(id, label, attrs = {}, hint = null) {
  const error = h('p', { class: 'field-error', id: `${id}-error`, 'aria-live': 'polite' });
  const hintElement = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const described = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' ');
  const input = h(attrs.tag ?? 'input', { id, name: id, 'aria-describedby': described, ...attrs, tag: null });
  const wrap = h('div', {}, h('label', { for: id }, label), input, hintElement, error);
  // An edited field drops its old complaint; the next submit checks it again.
  input.addEventListener('input', () => fieldError({ input, error }, null));
  return { wrap, input, error };
}

/** Marks a field invalid with `message`, or clears it with null. */
export function fieldError({ input, error }, message) {
  error.textContent = message ?? '';
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}
