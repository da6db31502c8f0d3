// The buyer's orders, newest first.

import * as api from '../api.js';
import { h, replace, loading } from '../dom.js';
import { money, dateTime, isoString, ORDER_STATUS, REFUND_STATUS } from '../format.js';
import { badge, requireUser } from '../app.js';

export default async function ordersView(ctx) {
  if (!requireUser(ctx)) return;
  ctx.setTitle('My orders');
  replace(ctx.root, h('h1', null, 'My orders'), loading('Loading your orders…'));
  const [orders, events] = await Promise.all([
    api.get('/api/v1/me/orders', { auth: true, signal: ctx.signal }),
    api.get('/api/v1/events', { signal: ctx.signal }).catch(() => []),
  ]);
  const names = new Map(events.map((e) => [e.id, e.name]));
  if (orders.length === 0) {
    replace(ctx.root, h('h1', null, 'My orders'), h('div', { class: 'card' }, h('p', null, 'No orders yet. '), h('a', { class: 'button', href: '#/' }, 'See the events on sale')));
    return;
  }
  replace(
    ctx.root,
    h('h1', null, 'My orders'),
    h(
      'div',
      { class: 'table-wrap card' },
      h(
        'table',
        null,
        h('caption', { class: 'visually-hidden' }, 'Your orders, newest first'),
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Event'), h('th', { scope: 'col' }, 'Ordered'), h('th', { scope: 'col', class: 'num' }, 'Tickets'), h('th', { scope: 'col', class: 'num' }, 'Amount'), h('th', { scope: 'col' }, 'Status'))),
        h(
          'tbody',
          null,
          orders.map((o) =>
            h(
              'tr',
              null,
              h('td', null, h('a', { href: `#/orders/${o.id}` }, names.get(o.event_id) ?? 'Order')),
              h('td', null, h('time', { datetime: isoString(o.created_at) }, dateTime(o.created_at))),
              h('td', { class: 'num' }, String(o.quantity)),
              h('td', { class: 'num' }, money(o.amount_cents, o.currency)),
              h(
                'td',
                null,
                badge(o.status, ORDER_STATUS[o.status] ?? o.status),
                o.refund ? [' ', badge(`refund_${o.refund.status}`, REFUND_STATUS[o.refund.status] ?? o.refund.status)] : null,
              ),
            ),
          ),
        ),
      ),
    ),
  );
}
