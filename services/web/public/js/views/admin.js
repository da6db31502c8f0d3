// The operators' start page: every event, with its live console and a way to create one.

import * as api from '../api.js';
import { h, replace, loading } from '../dom.js';
import { dateTime, isoString, num, EVENT_STATUS } from '../format.js';
import { badge, requireAdmin } from '../app.js';

export default async function adminView(ctx) {
  if (!requireAdmin(ctx)) return;
  ctx.setTitle('Console');
  replace(ctx.root, h('h1', null, 'Console'), loading('Loading events…'));
  const events = await api.get('/api/v1/events', { signal: ctx.signal });
  events.sort((a, b) => b.sale_opens_at.localeCompare(a.sale_opens_at));
  replace(
    ctx.root,
    h('h1', null, 'Console'),
    h('p', { class: 'row spread' }, h('span', { class: 'lead' }, 'Create sales and watch their waiting rooms live.'), h('a', { class: 'button', href: '#/admin/new' }, 'Create an event')),
    events.length === 0
      ? h('div', { class: 'card' }, h('p', null, 'No events yet.'))
      : h(
          'div',
          { class: 'table-wrap card' },
          h(
            'table',
            null,
            h('caption', { class: 'visually-hidden' }, 'Events, newest sale first'),
            h(
              'thead',
              null,
              h('tr', null, h('th', { scope: 'col' }, 'Event'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Sale opens'), h('th', { scope: 'col', class: 'num' }, 'Tickets left')),
            ),
            h(
              'tbody',
              null,
              events.map((e) =>
                h(
                  'tr',
                  null,
                  h('td', null, h('a', { href: `#/admin/events/${e.id}` }, e.name), h('br'), h('span', { class: 'muted' }, e.venue)),
                  h('td', null, badge(e.status, EVENT_STATUS[e.status] ?? e.status)),
                  h('td', null, h('time', { datetime: isoString(e.sale_opens_at) }, dateTime(e.sale_opens_at))),
                  h('td', { class: 'num' }, `${num(e.remaining)} / ${num(e.inventory)}`),
                ),
              ),
            ),
          ),
        ),
  );
}
