// One order, followed until its payment is settled (paid, failed or expired) and, when a payment
// came after the hold ended, until its refund is answered.

import * as api from '../api.js';
import { h, replace, loading, sleep, isAbort } from '../dom.js';
import { money, dateTime, isoString, count, ORDER_STATUS, REFUND_STATUS, refundWords } from '../format.js';
import { badge, requireUser } from '../app.js';

const OUTCOME = {
  pending_payment: {
    tone: '',
    title: 'Your tickets are reserved — confirming the payment',
    body: 'This usually takes a few seconds. This page updates by itself; you can also leave it and find the order under “My orders”.',
  },
  paid: {
    tone: 'ok',
    title: 'Paid — your tickets are yours',
    body: 'The payment went through. Your order is confirmed.',
  },
  payment_failed: {
    tone: 'bad',
    title: 'The payment failed',
    body: 'The payment was declined, so the order was cancelled and nothing was charged. The tickets went back on sale; you can queue again for them.',
  },
  expired: {
    tone: 'warn',
    title: 'The order expired',
    body: 'The payment was not confirmed in time, so the order was cancelled and its tickets went back on sale. If your payment still goes through, it is given back automatically, and this page says so.',
  },
};

export default async function orderView(ctx) {
  if (!requireUser(ctx)) return;
  const { signal } = ctx;
  const id = ctx.params.id;
  ctx.setTitle('Your order');
  replace(ctx.root, loading('Loading your order…'));
  let order;
  try {
    order = await api.get(`/api/v1/orders/${id}`, { auth: true, signal });
  } catch (error) {
    if (error.code === 'ORDER_NOT_FOUND' || error.code === 'VALIDATION') {
      replace(ctx.root, h('h1', null, 'Order not found'), h('p', null, 'There is no such order in your account. ', h('a', { href: '#/orders' }, 'See your orders'), '.'));
      return;
    }
    throw error;
  }
  const event = await api.get(`/api/v1/events/${order.event_id}`, { signal }).catch(() => null);

  const outcome = h('div', { id: 'order-outcome', role: 'status', 'aria-live': 'polite' });
  const facts = h('dl', { class: 'facts' });
  replace(
    ctx.root,
    h('h1', null, 'Your order'),
    outcome,
    h('section', { class: 'card', 'aria-labelledby': 'details-heading' }, h('h2', { id: 'details-heading' }, 'Details'), facts),
    h('p', { class: 'row' }, h('a', { class: 'button secondary', href: '#/orders' }, 'All my orders'), h('a', { class: 'button secondary', href: '#/' }, 'Events')),
  );

  const render = () => {
    const words = OUTCOME[order.status] ?? OUTCOME.pending_payment;
    // A refund replaces the status's own explanation (an expired order says nothing was charged).
    const refund = refundWords(order);
    ctx.setTitle(`${ORDER_STATUS[order.status] ?? 'Order'}: ${event?.name ?? 'your order'}`);
    replace(
      outcome,
      h(
        'div',
        { class: `notice ${refund?.tone ?? words.tone}`.trim() },
        h('h2', null, order.status === 'pending_payment' ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : null, order.status === 'pending_payment' ? ' ' : null, words.title),
        refund
          ? [
              h('p', null, refund.why),
              h('p', null, refund.state, order.refund.status === 'pending' ? ' This page updates by itself.' : null),
            ]
          : h('p', null, words.body),
        order.status === 'payment_failed' && event ? h('p', null, h('a', { href: `#/events/${event.id}` }, 'Back to the event')) : null,
      ),
    );
    replace(
      facts,
      h('dt', null, 'Event'),
      h('dd', null, event ? h('a', { href: `#/events/${event.id}` }, event.name) : 'Unknown event'),
      event ? [h('dt', null, 'When'), h('dd', null, h('time', { datetime: isoString(event.starts_at) }, dateTime(event.starts_at)))] : null,
      h('dt', null, 'Tickets'),
      h('dd', null, count(order.quantity, 'ticket', 'tickets')),
      h('dt', null, 'Amount'),
      h('dd', null, money(order.amount_cents, order.currency)),
      h('dt', null, 'Status'),
      h('dd', null, badge(order.status, ORDER_STATUS[order.status] ?? order.status)),
      order.refund
        ? [
            h('dt', null, 'Refund'),
            h('dd', null, badge(`refund_${order.refund.status}`, REFUND_STATUS[order.refund.status] ?? order.refund.status), ' ', h('time', { datetime: isoString(order.refund.at) }, dateTime(order.refund.at))),
          ]
        : null,
      h('dt', null, 'Ordered'),
      h('dd', null, h('time', { datetime: isoString(order.created_at) }, dateTime(order.created_at))),
      h('dt', null, 'Order number'),
      h('dd', null, h('code', null, order.id)),
    );
  };
  render();

  // Follow the payment, and a refund until the provider answers it: every second at first, then
  // more slowly. An order that expired is followed a while longer (its payment may still be
  // approved, and is then refunded); any other settled order with no refund pending is final.
  const EXPIRED_FOLLOW_MS = 10 * 60_000;
  const following = () =>
    order.status === 'pending_payment' ||
    order.refund?.status === 'pending' ||
    (order.status === 'expired' && !order.refund && Date.now() - Date.parse(order.updated_at) < EXPIRED_FOLLOW_MS);
  const started = Date.now();
  (async () => {
    while (following() && !signal.aborted) {
      const elapsed = Date.now() - started;
      await sleep(elapsed < 20_000 ? 1000 : elapsed < 120_000 ? 3000 : 10_000, signal);
      try {
        const fresh = await api.get(`/api/v1/orders/${id}`, { auth: true, signal });
        if (fresh.status !== order.status || fresh.refund?.status !== order.refund?.status) {
          order = fresh;
          render();
        }
      } catch (error) {
        if (isAbort(error)) return;
        // Transient: try again on the next round.
      }
    }
  })().catch(() => {});
}
