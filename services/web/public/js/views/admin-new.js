// Creating an event with its waiting-room settings (`NewEvent`), checked here with the same
// bounds the api enforces, and field by field from the api's answer.

import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { field, errorReporter, errorSummary } from '../forms.js';
import { parseMoney, minorDigits } from '../format.js';
import { requireAdmin } from '../app.js';
import { SUGGESTED_DIFFICULTY } from '../challenge.js';

const BOUNDS = {
  inventory: [0, 10_000_000],
  max_per_user: [1, 100],
  'queue.admit_per_sec': [1, 100_000],
  'queue.max_active': [1, 1_000_000],
  'queue.admission_ttl_s': [10, 3600],
  'queue.challenge_difficulty': [0, 32],
};

/** `Date` → the value of a `datetime-local` input, in local time. */
function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export default async function adminNewView(ctx) {
  if (!requireAdmin(ctx)) return;
  ctx.setTitle('Create an event');
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'local time';
  const now = new Date();
  now.setSeconds(0, 0);
  const starts = new Date(now.getTime() + 7 * 24 * 3600 * 1000);
  starts.setHours(20, 0, 0, 0);

  const fields = {
    name: field({ label: 'Name', name: 'name', required: true, maxlength: '200', autocomplete: 'off' }),
    venue: field({ label: 'Venue', name: 'venue', required: true, maxlength: '200', autocomplete: 'off' }),
    starts_at: field({ label: 'Event starts', name: 'starts_at', type: 'datetime-local', required: true, value: localInput(starts), hint: `Your time zone (${zone}). The sale closes when the event starts.` }),
    sale_opens_at: field({ label: 'Sale opens', name: 'sale_opens_at', type: 'datetime-local', required: true, value: localInput(now), hint: 'Buyers who arrive before this get a random place at the opening.' }),
    returns_until: field({ label: 'Returns reach the line until (optional)', name: 'returns_until', type: 'datetime-local', hint: 'Tickets that come back (a payment declined, an order left unpaid) go to the next people in line until then; a sold-out line closes at that moment. Empty: until the event starts.' }),
    price_cents: field({ label: 'Price per ticket', name: 'price', inputmode: 'decimal', required: true, value: '45.00', hint: 'In the currency below, e.g. 45.00' }),
    currency: field({ label: 'Currency', name: 'currency', required: true, value: 'EUR', maxlength: '3', autocapitalize: 'characters', hint: 'ISO 4217 code, e.g. EUR, USD, GBP' }),
    inventory: field({ label: 'Tickets for sale', name: 'inventory', type: 'number', required: true, min: '0', max: '10000000', value: '100', inputmode: 'numeric' }),
    max_per_user: field({ label: 'Tickets per buyer, at most', name: 'max_per_user', type: 'number', required: true, min: '1', max: '100', value: '4', inputmode: 'numeric' }),
    'queue.admit_per_sec': field({ label: 'Admissions per second', name: 'admit_per_sec', type: 'number', required: true, min: '1', max: '100000', value: '10', inputmode: 'numeric', hint: 'How many people in line are let in to buy each second.' }),
    'queue.max_active': field({ label: 'Buying at once, at most', name: 'max_active', type: 'number', required: true, min: '1', max: '1000000', value: '100', inputmode: 'numeric', hint: 'Admitted people who have not ordered yet; admissions wait while this many are buying.' }),
    'queue.admission_ttl_s': field({ label: 'Time to buy (seconds)', name: 'admission_ttl_s', type: 'number', required: true, min: '10', max: '3600', value: '300', inputmode: 'numeric', hint: 'How long an admitted buyer has to order, 10 to 3600.' }),
    'queue.challenge_difficulty': field({ label: 'Bot check difficulty (0 = off)', name: 'challenge_difficulty', type: 'number', required: true, min: '0', max: '32', value: '0', inputmode: 'numeric', hint: `Newcomers solve a small puzzle in their browser first; ${SUGGESTED_DIFFICULTY} takes about a second on a phone. Change it live in the console.` }),
  };
  const summary = errorSummary();
  const errors = errorReporter(summary, fields);
  const submit = h('button', { class: 'button', type: 'submit' }, 'Create event');
  const form = h(
    'form',
    { class: 'form card', novalidate: true },
    summary,
    fields.name.wrap,
    fields.venue.wrap,
    h('div', { class: 'pair' }, fields.sale_opens_at.wrap, fields.starts_at.wrap),
    fields.returns_until.wrap,
    h('div', { class: 'pair' }, fields.price_cents.wrap, fields.currency.wrap),
    h('div', { class: 'pair' }, fields.inventory.wrap, fields.max_per_user.wrap),
    h(
      'fieldset',
      null,
      h('legend', null, 'Waiting room'),
      fields['queue.admit_per_sec'].wrap,
      fields['queue.max_active'].wrap,
      fields['queue.admission_ttl_s'].wrap,
      fields['queue.challenge_difficulty'].wrap,
    ),
    submit,
  );
  replace(
    ctx.root,
    h('p', { class: 'muted' }, h('a', { href: '#/admin' }, '← Console')),
    h('h1', null, 'Create an event'),
    h('p', { class: 'lead' }, 'The event goes on sale at the time you set; its waiting room opens with it.'),
    form,
  );

  const read = () => {
    const problems = [];
    const value = (key) => fields[key].input.value.trim();
    const integer = (key) => {
      const text = value(key);
      const [lo, hi] = BOUNDS[key];
      const n = Number(text);
      if (!/^\d+$/.test(text) || n < lo || n > hi) {
        problems.push({ field: key, message: `Enter a whole number from ${lo.toLocaleString()} to ${hi.toLocaleString()}` });
        return 0;
      }
      return n;
    };
    const when = (key) => {
      const date = new Date(value(key));
      if (!value(key) || Number.isNaN(date.getTime())) {
        problems.push({ field: key, message: 'Enter a date and time' });
        return null;
      }
      return date;
    };
    if (!value('name')) problems.push({ field: 'name', message: 'Enter the event’s name' });
    if (!value('venue')) problems.push({ field: 'venue', message: 'Enter the venue' });
    const currency = value('currency').toUpperCase();
    if (!/^[A-Z]{3}$/.test(currency)) problems.push({ field: 'currency', message: 'Enter a three-letter code such as EUR' });
    const price = parseMoney(value('price_cents'), /^[A-Z]{3}$/.test(currency) ? currency : 'EUR');
    if (price === null) {
      const digits = minorDigits(currency);
      problems.push({ field: 'price_cents', message: digits > 0 ? `Enter an amount like 45.00 (at most ${digits} decimals)` : 'Enter a whole amount' });
    }
    const opens = when('sale_opens_at');
    const startsAt = when('starts_at');
    if (opens && startsAt && opens >= startsAt) problems.push({ field: 'sale_opens_at', message: 'The sale must open before the event starts' });
    const returnsUntil = value('returns_until') ? when('returns_until') : null;
    if (returnsUntil && opens && returnsUntil <= opens) problems.push({ field: 'returns_until', message: 'Must be after the sale opens' });
    if (returnsUntil && startsAt && returnsUntil > startsAt) problems.push({ field: 'returns_until', message: 'Must not be after the event starts' });
    const body = {
      name: value('name'),
      venue: value('venue'),
      starts_at: startsAt?.toISOString(),
      sale_opens_at: opens?.toISOString(),
      price_cents: price ?? 0,
      currency,
      inventory: integer('inventory'),
      max_per_user: integer('max_per_user'),
      ...(returnsUntil ? { returns_until: returnsUntil.toISOString() } : {}),
      queue: {
        admit_per_sec: integer('queue.admit_per_sec'),
        max_active: integer('queue.max_active'),
        admission_ttl_s: integer('queue.admission_ttl_s'),
        challenge_difficulty: integer('queue.challenge_difficulty'),
      },
    };
    return { body, problems };
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submit.getAttribute('aria-disabled') === 'true') return;
    const { body, problems } = read();
    if (problems.length) {
      errors.show(problems);
      return;
    }
    errors.clear();
    submit.setAttribute('aria-disabled', 'true');
    submit.textContent = 'Creating…';
    try {
      const created = await api.post('/api/v1/admin/events', body, { auth: true, signal: ctx.signal });
      ctx.navigate(`/admin/events/${created.id}`);
    } catch (error) {
      if (error?.name === 'AbortError') return;
      if (error.code === 'VALIDATION' && error.errors.length) errors.show(error.errors);
      else errors.show([{ field: '', message: api.explain(error) }], 'Could not create the event');
    } finally {
      submit.removeAttribute('aria-disabled');
      submit.textContent = 'Create event';
    }
  });
}
