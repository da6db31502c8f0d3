// Checkout, once admitted: how many tickets, the total, and a countdown of the admission
// window. One idempotency key per admission and quantity, so pressing "Buy" again after a lost
// answer never orders twice.

import * as api from '../api.js';
import { h, replace, announce, uid } from '../dom.js';
import { money, countdown, clockTime, spokenDuration, count } from '../format.js';

/** The claims of a gate token (read only, to tell admissions apart; the api verifies it). */
function gateClaims(gateToken) {
  try {
    const part = gateToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='))) ?? {};
  } catch {
    return {};
  }
}

/** The admission's id (`jti`), to key the idempotency key by admission. */
function admissionId(gateToken) {
  return gateClaims(gateToken).jti ?? gateToken;
}

function idempotencyKey(gateToken, quantity) {
  const slot = `flash.order.${admissionId(gateToken)}`;
  try {
    const saved = JSON.parse(sessionStorage.getItem(slot) ?? 'null');
    if (saved && saved.quantity === quantity && typeof saved.key === 'string') return saved.key;
    const key = crypto.randomUUID();
    sessionStorage.setItem(slot, JSON.stringify({ key, quantity }));
    return key;
  } catch {
    return crypto.randomUUID();
  }
}

/**
 * The buyer's standing for an event from their orders: tickets held in live orders (what the
 * per-buyer limit counts), and the order placed with this admission, if any (an admission
 * stays `admitted` after its order; its gate token is then refused as used).
 */
export async function standingFromOrders(eventId, gateToken, signal) {
  let orders = [];
  try {
    orders = (await api.get('/api/v1/me/orders', { auth: true, signal })).filter((o) => o.event_id === eventId);
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
  }
  const held = orders
    .filter((o) => o.status === 'pending_payment' || o.status === 'paid')
    .reduce((sum, o) => sum + o.quantity, 0);
  const admittedAt = (Number(gateClaims(gateToken ?? '').iat) || Infinity) * 1000;
  // `iat` has whole seconds: an order in the same second as the admission is this one's.
  const used = gateToken ? orders.find((o) => Date.parse(o.created_at) >= admittedAt - 1000) ?? null : null;
  return { held, used, latest: orders[0] ?? null };
}

/**
 * Renders checkout into `panel`. `expiresAt` is the end of the admission (server time);
 * `now()` reads the server's clock. Calls `onOrdered(order)`, `onExpired()` or
 * `onQueueAgain()`.
 */
export async function renderCheckout(panel, { event: known, place, signal, now, onOrdered, onExpired, onQueueAgain }) {
  const expiresAt = Date.parse(place.gate_expires_at);
  const timer = h('p', { class: 'countdown', role: 'timer', 'aria-live': 'off', 'aria-atomic': 'true' });
  const until = h('span');
  const heading = h('h2', { id: 'checkout-heading' }, 'It’s your turn — buy your tickets');
  const message = h('div', { 'aria-live': 'polite' });
  replace(
    panel,
    h(
      'section',
      { class: 'card stack', 'aria-labelledby': 'checkout-heading' },
      heading,
      h('p', null, 'Your admission is held for you until ', until, '. After that your place goes to the next person in line.'),
      h('p', { class: 'muted timer-label', id: 'timer-label' }, 'Time left to buy'),
      timer,
      message,
      h('p', { class: 'muted' }, 'Loading your checkout…'),
    ),
  );
  until.textContent = Number.isNaN(expiresAt) ? 'the window closes' : clockTime(new Date(expiresAt));
  timer.setAttribute('aria-labelledby', 'timer-label');

  const spoken = new Set();
  let over = false;
  const tick = () => {
    const left = Math.max(0, (expiresAt - now()) / 1000);
    timer.textContent = countdown(left);
    timer.classList.toggle('urgent', left <= 60);
    for (const mark of [120, 60, 30]) {
      if (left <= mark && left > mark - 5 && !spoken.has(mark)) {
        spoken.add(mark);
        announce(`${spokenDuration(mark)} left to buy your tickets.`, mark <= 60);
      }
    }
    if (left <= 0 && !over) {
      over = true;
      onExpired();
    }
  };
  if (!Number.isNaN(expiresAt)) {
    tick();
    const interval = setInterval(tick, 250);
    signal.addEventListener('abort', () => clearInterval(interval));
  }

  const [{ held, used }, event] = await Promise.all([
    standingFromOrders(known.id, place.gate_token, signal),
    api.get(`/api/v1/events/${known.id}`, { signal }).catch(() => known),
  ]);
  if (signal.aborted) return;
  const card = panel.querySelector('section');
  card.lastElementChild.remove();
  if (used) {
    over = true;
    replace(
      card,
      h('h2', { id: 'checkout-heading' }, 'You ordered with this admission'),
      h('p', null, 'Each turn in line buys once, and this one has been used.'),
      h(
        'p',
        { class: 'row' },
        h('a', { class: 'button', href: `#/orders/${used.id}` }, 'See your order'),
        held < event.max_per_user && event.remaining > 0
          ? h('button', { class: 'button secondary', type: 'button', onclick: onQueueAgain }, 'Queue again to buy more')
          : null,
      ),
    );
    return;
  }
  const allowed = Math.min(event.max_per_user - held, event.remaining);
  if (allowed <= 0) {
    const soldOut = event.remaining <= 0;
    card.append(
      h(
        'div',
        { class: `notice ${soldOut ? 'bad' : 'warn'}`, role: 'alert' },
        h(
          'p',
          null,
          soldOut
            ? 'Sorry — every ticket has been sold.'
            : `You already hold ${count(held, 'ticket', 'tickets')} for this event, the most one buyer may have.`,
        ),
        soldOut ? null : h('p', null, h('a', { href: '#/orders' }, 'See your orders')),
      ),
    );
    return;
  }

  const selectId = uid('qty');
  const select = h(
    'select',
    { id: selectId, name: 'quantity', 'aria-describedby': `${selectId}-hint` },
    Array.from({ length: allowed }, (_, i) => h('option', { value: String(i + 1) }, String(i + 1))),
  );
  const total = h('strong', { 'aria-live': 'polite' });
  const buy = h('button', { class: 'button big', type: 'submit' });
  const update = () => {
    const quantity = Number(select.value);
    total.textContent = money(event.price_cents * quantity, event.currency);
    buy.textContent = `Buy ${count(quantity, 'ticket', 'tickets')} for ${money(event.price_cents * quantity, event.currency)}`;
  };
  select.addEventListener('change', update);
  update();

  const showError = (text, actions = []) => {
    replace(message, h('div', { class: 'notice bad', role: 'alert' }, h('p', null, text), actions.length ? h('p', { class: 'row' }, actions) : null));
  };

  const form = h(
    'form',
    { class: 'form', novalidate: true },
    h(
      'div',
      { class: 'field' },
      h('label', { for: selectId }, 'Number of tickets'),
      h(
        'span',
        { class: 'hint', id: `${selectId}-hint` },
        `${money(event.price_cents, event.currency)} each · at most ${event.max_per_user} per buyer`,
        held > 0 ? ` (you already hold ${held})` : '',
      ),
      select,
    ),
    h('p', null, 'Total: ', total),
    buy,
    h('p', { class: 'muted' }, 'Your tickets are reserved the moment you order; the payment is then confirmed on the next page.'),
  );
  card.append(form);

  let busy = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (busy || over) return;
    busy = true;
    buy.setAttribute('aria-disabled', 'true');
    const label = buy.textContent;
    buy.textContent = 'Placing your order…';
    replace(message);
    const quantity = Number(select.value);
    try {
      let order;
      for (let attempt = 0; ; attempt += 1) {
        try {
          order = await api.post(
            `/api/v1/events/${event.id}/orders`,
            { quantity },
            {
              auth: true,
              signal,
              headers: { 'Gate-Token': place.gate_token, 'Idempotency-Key': idempotencyKey(place.gate_token, quantity) },
            },
          );
          break;
        } catch (error) {
          if (error?.code === 'IDEMPOTENCY_KEY_REUSED' && attempt === 0) {
            sessionStorage.removeItem(`flash.order.${admissionId(place.gate_token)}`);
            continue;
          }
          throw error;
        }
      }
      onOrdered(order);
      return;
    } catch (error) {
      if (error?.name === 'AbortError') return;
      handleOrderError(error, { event, signal, showError, onExpired, onQueueAgain, select });
    } finally {
      busy = false;
      buy.removeAttribute('aria-disabled');
      if (buy.textContent === 'Placing your order…') buy.textContent = label;
      update();
    }
  });
  select.focus();
}

async function handleOrderError(error, { event, signal, showError, onExpired, onQueueAgain, select }) {
  const queueAgain = h('button', { class: 'button', type: 'button', onclick: onQueueAgain }, 'Queue again');
  switch (error.code) {
    case 'SOLD_OUT': {
      let left = 0;
      try {
        left = (await api.get(`/api/v1/events/${event.id}`, { signal })).remaining;
      } catch {
        left = 0;
      }
      if (left > 0) {
        for (const option of [...select.options]) if (Number(option.value) > left) option.remove();
        showError(`Only ${count(left, 'ticket is', 'tickets are')} left now. Choose fewer and buy again.`);
      } else {
        showError('Sorry — these tickets just sold out. No order was placed and nothing was charged.', [
          h('a', { class: 'button secondary', href: '#/' }, 'Other events'),
        ]);
      }
      return;
    }
    case 'LIMIT_EXCEEDED':
      showError(
        `That would take you over the limit of ${event.max_per_user} tickets per buyer for this event (orders being paid count too).`,
        [h('a', { href: '#/orders' }, 'See your orders')],
      );
      return;
    case 'GATE_TOKEN_EXPIRED':
      onExpired();
      return;
    case 'GATE_TOKEN_USED': {
      const { latest: order } = await standingFromOrders(event.id, null, signal);
      showError(
        'This admission was already used for an order (perhaps in another tab).',
        order ? [h('a', { class: 'button', href: `#/orders/${order.id}` }, 'See that order')] : [queueAgain],
      );
      return;
    }
    case 'GATE_TOKEN_INVALID':
    case 'GATE_TOKEN_MISMATCH':
      showError('Your admission is no longer valid. Queue again to get a new one.', [queueAgain]);
      return;
    case 'NETWORK':
    case 'UNAVAILABLE':
    case 'TIMEOUT':
      showError(
        'We could not confirm your order. Press Buy again: if the first try went through, you get that same order — never two.',
      );
      return;
    default:
      showError(api.explain(error));
  }
}
