// The events on sale: status, remaining stock, price and date, refreshed while the page is open.

import * as api from '../api.js';
import { h, replace, every, loading } from '../dom.js';
import { money, dateTime, isoString, num, EVENT_STATUS } from '../format.js';
import { badge } from '../app.js';
import * as session from '../session.js';

const ORDER = { on_sale: 0, scheduled: 1, sold_out: 2, ended: 3 };

export function eventCard(event) {
  const left = event.inventory > 0 ? event.remaining / event.inventory : 0;
  return h(
    'li',
    null,
    h(
      'article',
      { class: 'card event-card', 'aria-labelledby': `ev-${event.id}` },
      h('div', { class: 'row spread' }, badge(event.status, EVENT_STATUS[event.status] ?? event.status), h('strong', null, money(event.price_cents, event.currency))),
      h('h2', { id: `ev-${event.id}` }, h('a', { href: `#/events/${event.id}` }, event.name)),
      h('p', { class: 'meta' }, h('time', { datetime: isoString(event.starts_at) }, dateTime(event.starts_at))),
      h('p', { class: 'meta' }, event.venue),
      event.status === 'ended'
        ? null
        : [
            h('div', { class: 'stock', 'aria-hidden': 'true' }, h('span', { dataset: { fill: String(Math.round(left * 100)) } })),
            h('p', { class: 'meta' }, event.remaining === 0 ? 'No tickets left' : `${num(event.remaining)} of ${num(event.inventory)} tickets left`),
          ],
    ),
  );
}

/** Sizes stock bars from their data attribute (through the CSSOM: the CSP forbids style attributes). */
export function sizeStockBars(root) {
  for (const bar of root.querySelectorAll('.stock > span[data-fill]')) {
    bar.style.width = `${bar.dataset.fill}%`;
  }
}

export default async function eventsView(ctx) {
  ctx.setTitle('Events');
  const list = h('div', null, loading('Loading events…'));
  const updated = h('p', { class: 'muted', 'aria-live': 'off' });
  replace(
    ctx.root,
    h('h1', null, 'Tickets on sale'),
    h('p', { class: 'lead' }, 'Popular sales open with a waiting room: everyone gets a fair place in line, and the page tells you where you stand.'),
    list,
    updated,
  );

  const load = async () => {
    const events = await api.get('/api/v1/events', { signal: ctx.signal });
    events.sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9) || a.starts_at.localeCompare(b.starts_at));
    if (events.length === 0) {
      replace(
        list,
        h(
          'div',
          { class: 'card' },
          h('p', null, 'No events yet. Check back soon.'),
          session.isAdmin() ? h('p', null, h('a', { class: 'button', href: '#/admin/new' }, 'Create an event')) : null,
        ),
      );
    } else {
      replace(list, h('ul', { class: 'grid', 'aria-label': 'Events' }, events.map(eventCard)));
      sizeStockBars(list);
    }
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  };
  await load();
  every(15_000, () => load().catch(() => {}), ctx.signal);
}
