// Creating an account (then logged in at once).

import * as api from '../api.js';
import * as session from '../session.js';
import { h, replace } from '../dom.js';
import { field, errorReporter, errorSummary } from '../forms.js';
import { nextPath } from './login.js';

export default async function signupView(ctx) {
  ctx.setTitle('Sign up');
  const next = nextPath(ctx);
  const email = field({ label: 'E-mail', name: 'email', type: 'email', autocomplete: 'email', required: true, spellcheck: 'false' });
  const password = field({
    label: 'Password',
    name: 'password',
    type: 'password',
    autocomplete: 'new-password',
    required: true,
    minlength: '8',
    maxlength: '128',
    hint: '8 to 128 characters. A few words together make a strong one.',
  });
  const summary = errorSummary();
  const errors = errorReporter(summary, { email, password });
  const submit = h('button', { class: 'button', type: 'submit' }, 'Create account');
  const form = h('form', { class: 'form card', novalidate: true }, summary, email.wrap, password.wrap, submit);
  replace(
    ctx.root,
    h('h1', null, 'Sign up'),
    h('p', { class: 'lead' }, 'An account keeps your place in line and your orders.'),
    form,
    h('p', null, 'Already have an account? ', h('a', { href: `#/login?next=${encodeURIComponent(next)}` }, 'Log in'), '.'),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submit.getAttribute('aria-disabled') === 'true') return;
    const address = email.input.value.trim();
    const secret = password.input.value;
    const problems = [];
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address)) problems.push({ field: 'email', message: 'Enter an e-mail address like name@example.com' });
    if ([...secret].length < 8 || [...secret].length > 128) problems.push({ field: 'password', message: 'Use 8 to 128 characters' });
    if (problems.length) {
      errors.show(problems);
      return;
    }
    submit.setAttribute('aria-disabled', 'true');
    submit.textContent = 'Creating your account…';
    try {
      await api.post('/api/v1/auth/register', { email: address, password: secret }, { signal: ctx.signal });
      const tokens = await api.post('/api/v1/auth/login', { email: address, password: secret }, { signal: ctx.signal });
      session.signIn(tokens, address);
      ctx.navigate(next, { replace: true });
    } catch (error) {
      if (error?.name === 'AbortError') return;
      if (error.code === 'EMAIL_TAKEN') {
        errors.show([{ field: 'email', message: 'An account with this e-mail exists already — log in instead' }], 'Could not create the account');
      } else if (error.code === 'VALIDATION' && error.errors.length) {
        errors.show(error.errors.map((e) => ({ field: e.field, message: e.message })), 'Could not create the account');
      } else {
        errors.show([{ field: '', message: api.explain(error) }], 'Could not create the account');
      }
    } finally {
      submit.removeAttribute('aria-disabled');
      submit.textContent = 'Create account';
    }
  });
}
