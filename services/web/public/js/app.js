// What views share: sign-in guards and the page-level error.

import { h, replace } from './dom.js';
import * as session from './session.js';
import { ApiError, explain } from './api.js';

/** True when signed in; otherwise sends the visitor to log in and back here afterwards. */
export function requireUser(ctx) {
  if (session.user()) return true;
  ctx.navigate(`/login?next=${encodeURIComponent(ctx.path)}`, { replace: true });
  return false;
}

/** True for operators; others are sent to log in, or told the page is not for them. */
export function requireAdmin(ctx) {
  if (!requireUser(ctx)) return false;
  if (session.isAdmin()) return true;
  ctx.setTitle('Operators only');
  replace(
    ctx.root,
    h('h1', null, 'Operators only'),
    h('p', null, 'The console is for operators. You are signed in as a buyer.'),
    h('p', null, h('a', { href: '#/' }, 'See the events on sale')),
  );
  return false;
}

/** A whole-page error with a way forward. */
export function renderError(root, error) {
  const signedOut = error instanceof ApiError && error.code === 'UNAUTHENTICATED';
  replace(
    root,
    h('h1', null, signedOut ? 'Please log in again' : 'Something went wrong'),
    h('div', { class: 'notice bad', role: 'alert' }, h('p', null, explain(error))),
    h(
      'p',
      { class: 'row' },
      signedOut
        ? h('a', { class: 'button', href: '#/login' }, 'Log in')
        : h('button', { class: 'button', type: 'button', onclick: () => window.location.reload() }, 'Try again'),
      h('a', { class: 'button secondary', href: '#/' }, 'All events'),
    ),
  );
}

/** A status badge. */
export function badge(kind, text) {
  return h('span', { class: `badge ${kind}` }, text);
}
