// Logging in; afterwards back to where the buyer was going.

import * as api from '../api.js';
import * as session from '../session.js';
import { h, replace } from '../dom.js';
import { field, errorReporter, errorSummary } from '../forms.js';

/** The in-app path to return to (only paths of this app, never another site). */
export function nextPath(ctx) {
  const next = ctx.query.get('next') ?? '/';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export default async function loginView(ctx) {
  ctx.setTitle('Log in');
  const next = nextPath(ctx);
  const email = field({ label: 'E-mail', name: 'email', type: 'email', autocomplete: 'username', required: true, spellcheck: 'false' });
  const password = field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const summary = errorSummary();
  const errors = errorReporter(summary, { email, password });
  const submit = h('button', { class: 'button', type: 'submit' }, 'Log in');
  const form = h(
    'form',
    { class: 'form card', novalidate: true },
    summary,
    email.wrap,
    password.wrap,
    submit,
  );
  replace(
    ctx.root,
    h('h1', null, 'Log in'),
    h('p', { class: 'lead' }, 'Log in to join a line and buy tickets.'),
    form,
    h('p', null, 'New here? ', h('a', { href: `#/signup?next=${encodeURIComponent(next)}` }, 'Create an account'), '.'),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submit.getAttribute('aria-disabled') === 'true') return;
    const problems = [];
    if (!email.input.value.trim()) problems.push({ field: 'email', message: 'Enter your e-mail address' });
    if (!password.input.value) problems.push({ field: 'password', message: 'Enter your password' });
    if (problems.length) {
      errors.show(problems);
      return;
    }
    submit.setAttribute('aria-disabled', 'true');
    submit.textContent = 'Logging in…';
    try {
      const tokens = await api.post('/api/v1/auth/login', { email: email.input.value.trim(), password: password.input.value }, { signal: ctx.signal });
      session.signIn(tokens, email.input.value.trim());
      ctx.navigate(next, { replace: true });
    } catch (error) {
      if (error?.name === 'AbortError') return;
      errors.show([
        {
          field: error.code === 'INVALID_CREDENTIALS' ? 'password' : '',
          message: error.code === 'INVALID_CREDENTIALS' ? 'The e-mail or password is not right' : api.explain(error),
        },
      ], 'Could not log you in');
    } finally {
      submit.removeAttribute('aria-disabled');
      submit.textContent = 'Log in';
    }
  });
}
