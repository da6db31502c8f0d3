// One event: what it is, what is left, and the way into its line.

import * as api from '../api.js';
import { h, replace, every, sleep, loading, isAbort } from '../dom.js';
import { money, dateTime, isoString, num, count, EVENT_STATUS } from '../format.js';
import { badge } from '../app.js';
import * as session from '../session.js';
import { standingFromOrders } from './checkout.js';
import { joinQueue, checking } from '../challenge.js';

export default async function eventView(ctx) {
  const { signal } = ctx;
  const id = ctx.params.id;
  replace(ctx.root, loading('Loading the event…'));
  let event;
  try {
    event = await api.get(`/api/v1/events/${id}`, { signal });
  } catch (error) {
    if (error.code === 'EVENT_NOT_FOUND' || error.code === 'VALIDATION') {
      ctx.setTitle('Event not found');
      replace(
        ctx.root,
        h('h1', null, 'Event not found'),
        h('p', null, 'This event does not exist, or its address is mistyped. ', h('a', { href: '#/' }, 'See the events on sale'), '.'),
      );
      return;
    }
    throw error;
  }
  ctx.setTitle(event.name);

  const status = h('span');
  const facts = h('dl', { class: 'facts' });
  const action = h('section', { class: 'card', 'aria-labelledby': 'action-heading' });
  replace(
    ctx.root,
    h('p', { class: 'muted' }, h('a', { href: '#/' }, '← All events')),
    h('h1', null, event.name),
    h('p', null, status),
    facts,
    action,
  );

  let place = null;
  /** The order placed with the buyer's current admission, when it was used. */
  let usedBy = null;
  const renderFacts = () => {
    replace(status, badge(event.status, EVENT_STATUS[event.status] ?? event.status));
    replace(
      facts,
      h('dt', null, 'When'),
      h('dd', null, h('time', { datetime: isoString(event.starts_at) }, dateTime(event.starts_at))),
      h('dt', null, 'Where'),
      h('dd', null, event.venue),
      h('dt', null, 'Price'),
      h('dd', null, `${money(event.price_cents, event.currency)} per ticket`),
      h('dt', null, 'Tickets left'),
      h('dd', null, event.status === 'ended' ? '—' : `${num(event.remaining)} of ${num(event.inventory)}`),
      h('dt', null, 'Per buyer'),
      h('dd', null, `at most ${count(event.max_per_user, 'ticket', 'tickets')}`),
      h('dt', null, 'Sale opens'),
      h('dd', null, h('time', { datetime: isoString(event.sale_opens_at) }, dateTime(event.sale_opens_at))),
    );
  };
  const render = () => {
    renderFacts();
    renderAction();
  };

  const message = h('div', { 'aria-live': 'polite' });

  function renderAction() {
    const heading = (text) => h('h2', { id: 'action-heading' }, text);
    const user = session.user();
    const inLine = place && ['pre_queue', 'waiting', 'admitted'].includes(place.state);
    if (inLine) {
      replace(
        action,
        heading('You are in line'),
        h('p', null, place.state === 'admitted' ? 'It is your turn to buy — hurry, the time to buy is limited.' : 'Your place is kept. Follow it live in the waiting room.'),
        h('a', { class: 'button big', href: `#/events/${id}/queue` }, place.state === 'admitted' ? 'Buy your tickets' : 'Go to the waiting room'),
      );
      return;
    }
    switch (event.status) {
      case 'sold_out':
        // Orders still being paid: their tickets may come back, and go to the people in line.
        if (event.reserved_pending > 0) break;
        replace(
          action,
          heading('Sold out'),
          h('p', null, 'Every ticket has been sold. Tickets sometimes come back when an order is not paid: if they do, this page shows “On sale” again and the line reopens.'),
        );
        return;
      case 'ended':
        replace(action, heading('The sale has ended'), h('p', null, 'This event has taken place or its sale was closed.'));
        return;
      default:
        break;
    }
    const scheduled = event.status === 'scheduled';
    const intro = scheduled
      ? h('p', null, 'The sale has not opened yet. Join the line now: everyone who joins before the opening gets a random place when it opens, so there is no need to wait up for it.')
      : event.status === 'sold_out'
        ? h('p', null, `All tickets are reserved, and ${count(event.reserved_pending, 'order is', 'orders are')} still being paid. If a payment fails, its tickets go to the people in line, in the order they joined.`)
        : h('p', null, 'Tickets are sold through a waiting room. Join the line, and we let people in to buy a few at a time, in the order they joined.');
    if (!user) {
      replace(
        action,
        heading(scheduled ? 'Get in line before the sale' : 'Get tickets'),
        intro,
        h('p', { class: 'row' }, h('a', { class: 'button big', href: `#/login?next=${encodeURIComponent(`/events/${id}`)}` }, 'Log in to join the line'), h('a', { href: `#/signup?next=${encodeURIComponent(`/events/${id}`)}` }, 'New here? Sign up')),
      );
      return;
    }
    const join = h(
      'button',
      { class: 'button big', type: 'button', onclick: () => joinLine(join) },
      usedBy ? 'Queue again' : scheduled ? 'Join the line before the sale' : 'Join the line',
    );
    const bought = usedBy
      ? h('p', { class: 'notice ok' }, 'You bought tickets on your last turn: ', h('a', { href: `#/orders/${usedBy.id}` }, 'see your order'), '. To buy more, queue again.')
      : null;
    replace(action, heading(scheduled ? 'Get in line before the sale' : 'Get tickets'), bought, intro, join, message);
  }

  async function joinLine(button) {
    if (button.getAttribute('aria-disabled') === 'true') return;
    button.setAttribute('aria-disabled', 'true');
    replace(message);
    const started = Date.now();
    try {
      if (usedBy) {
        // A used admission is still a place in line: give it up to join at the back.
        await api.post(`/queue/v1/events/${id}/leave`, undefined, { auth: true, signal }).catch((error) => {
          if (error.code !== 'NOT_IN_QUEUE') throw error;
        });
        usedBy = null;
      }
      for (;;) {
        try {
          await joinQueue(id, {
            signal,
            onChecking: () => replace(message, checking()),
          });
          ctx.navigate(`/events/${id}/queue`);
          return;
        } catch (error) {
          if (isAbort(error)) return;
          if (error.code === 'RATE_LIMITED') {
            const seconds = Math.max(1, error.retryAfter ?? 2);
            replace(message, h('p', { class: 'notice warn' }, `Many people are joining right now. Trying again in ${seconds} s…`));
            await sleep(seconds * 1000, signal);
            continue;
          }
          if (error.code === 'EVENT_NOT_FOUND' && Date.now() - started < 15_000) {
            // The api announces new events to the waiting room within moments.
            replace(message, h('p', { class: 'notice' }, 'The waiting room for this event is opening. Trying again…'));
            await sleep(1000, signal);
            continue;
          }
          if (error.code === 'QUEUE_CLOSED') {
            event = await api.get(`/api/v1/events/${id}`, { signal });
            if (event.status === 'on_sale' || event.status === 'scheduled') event = { ...event, status: 'sold_out' };
            render();
            return;
          }
          if (error.code === 'UNAUTHENTICATED') {
            ctx.navigate(`/login?next=${encodeURIComponent(`/events/${id}`)}`);
            return;
          }
          replace(message, h('div', { class: 'notice bad', role: 'alert' }, h('p', null, api.explain(error))));
          return;
        }
      }
    } catch (error) {
      if (!isAbort(error)) replace(message, h('div', { class: 'notice bad', role: 'alert' }, h('p', null, api.explain(error))));
    } finally {
      button.removeAttribute('aria-disabled');
    }
  }

  const checkPlace = async () => {
    if (!session.user() || event.status === 'ended') {
      place = null;
      return;
    }
    try {
      place = await api.get(`/queue/v1/events/${id}/status`, { auth: true, signal });
    } catch (error) {
      if (isAbort(error)) throw error;
      place = null;
    }
    usedBy = null;
    if (place?.state === 'admitted' && place.gate_token) {
      usedBy = (await standingFromOrders(id, place.gate_token, signal)).used;
      if (usedBy) place = null;
    }
  };

  await checkPlace();
  render();
  // Stock and status move during a sale.
  every(
    10_000,
    async () => {
      try {
        const fresh = await api.get(`/api/v1/events/${id}`, { signal });
        const changed = fresh.status !== event.status || fresh.remaining !== event.remaining;
        event = fresh;
        if (!changed) return;
        renderFacts();
        if (!action.contains(document.activeElement)) renderAction();
      } catch {
        // Keep showing what we have.
      }
    },
    signal,
  );
}
