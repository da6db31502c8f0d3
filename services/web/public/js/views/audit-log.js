// An event's audit log in the console: who changed the sale, when, and what changed
// (GET /api/v1/admin/audit?event_id=…, newest first).

import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { dateTime, isoString } from '../format.js';

const ACTIONS = {
  'event.create': 'Created the event',
  'event.update': 'Changed the event',
  'queue.update': 'Changed the queue',
  'admin.grant': 'Made an admin',
};

/** How many records the console shows. */
const SHOWN = 50;

const show = (value) => (value === null || value === undefined ? '—' : typeof value === 'string' ? value : JSON.stringify(value));

/** The card; `refresh()` reads the log again. */
export function auditLog({ eventId, signal }) {
  const body = h('div', { id: 'audit-log' }, h('p', { class: 'muted' }, 'Loading…'));
  const element = h(
    'section',
    { class: 'card', 'aria-labelledby': 'audit-heading' },
    h('h2', { id: 'audit-heading' }, 'Changes'),
    h('p', { class: 'muted' }, 'Every change operators made to this sale, newest first. The log cannot be edited.'),
    body,
  );
  let shown = '';

  const render = (records) => {
    const key = records.map((r) => r.id).join(',');
    if (key === shown) return;
    shown = key;
    if (records.length === 0) {
      replace(body, h('p', { class: 'muted' }, 'No changes recorded yet.'));
      return;
    }
    replace(
      body,
      h(
        'ol',
        { class: 'audit' },
        records.map((r) =>
          h(
            'li',
            { class: 'record' },
            h(
              'p',
              null,
              h('strong', null, ACTIONS[r.action] ?? r.action),
              ' — ',
              r.actor_email ?? (r.actor ? r.actor : 'the service'),
              ', ',
              h('time', { datetime: isoString(r.at) }, dateTime(r.at)),
            ),
            h(
              'ul',
              { class: 'changes' },
              Object.entries(r.changes).map(([field, [before, after]]) =>
                h('li', null, h('code', null, field), ': ', r.action === 'event.create' ? show(after) : `${show(before)} → ${show(after)}`),
              ),
            ),
          ),
        ),
      ),
    );
  };

  return {
    element,
    async refresh() {
      try {
        render(await api.get(`/api/v1/admin/audit?event_id=${eventId}&limit=${SHOWN}`, { auth: true, signal }));
      } catch (error) {
        if (error?.name === 'AbortError') throw error;
        replace(body, h('p', { role: 'alert' }, `Could not read the log: ${api.explain(error)}`));
        shown = '';
      }
    },
  };
}
