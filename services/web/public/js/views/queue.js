// The waiting room: live place, people ahead, an honest wait, progress, what happens next;
// checkout once admitted; clear words for sold out, ended and expired admissions.

import * as api from '../api.js';
import { h, replace, announce, loading } from '../dom.js';
import { count, num, wait, waitRange, dateTime, countdown, isoString } from '../format.js';
import { requireUser, renderError } from '../app.js';
import { QueueConnection, fromTicket } from '../queue-client.js';
import { LineProgress, assessWait } from '../progress.js';
import { renderCheckout } from './checkout.js';
import { joinQueue, checking } from '../challenge.js';
import { fairnessCard } from './fairness-card.js';
import * as session from '../session.js';

const TRANSPORT = {
  connecting: ['reconnecting', 'Connecting…'],
  live: ['live', 'Live'],
  reconnecting: ['reconnecting', 'Reconnecting… your place is kept'],
  polling: ['polling', 'Live updates unavailable — checking every few seconds'],
  offline: ['offline', 'No connection — your place is kept; we retry by ourselves'],
  replaced: ['paused', 'Following in another tab'],
};

export default async function queueView(ctx) {
  if (!requireUser(ctx)) return;
  const { signal } = ctx;
  const eventId = ctx.params.id;
  ctx.setTitle('Waiting room');
  replace(ctx.root, loading('Finding your place in line…'));

  let event;
  try {
    event = await api.get(`/api/v1/events/${eventId}`, { signal });
  } catch (error) {
    if (error.code === 'EVENT_NOT_FOUND' || error.code === 'VALIDATION') {
      ctx.setTitle('Event not found');
      replace(ctx.root, h('h1', null, 'Event not found'), h('p', null, h('a', { href: '#/' }, 'See the events on sale')));
      return;
    }
    throw error;
  }

  const progress = new LineProgress(eventId);
  const panel = h('div', { id: 'queue-panel' });
  const transport = h('span', { class: 'badge reconnecting', id: 'transport' }, 'Connecting…');
  const next = h('section', { class: 'card', 'aria-labelledby': 'next-heading' });
  const actions = h('div', { class: 'row' });
  const draw = fairnessCard({ eventId, userId: session.user()?.id, signal });
  replace(
    ctx.root,
    h('p', { class: 'muted' }, h('a', { href: `#/events/${eventId}` }, '← ', event.name)),
    h('h1', null, 'Waiting room'),
    h(
      'p',
      { class: 'lead' },
      event.name,
      ' · ',
      event.venue,
      ' · ',
      h('time', { datetime: isoString(event.starts_at) }, dateTime(event.starts_at)),
    ),
    panel,
    next,
    actions,
    draw.element,
  );

  let place = null;
  let view = null;
  let conn = null;
  let transportKind = 'connecting';
  let lastAnnounced = 0;
  let lastState = null;
  let drawnFor;
  let checkoutAbort = null;

  const stopConnection = () => {
    conn?.stop();
    conn = null;
  };
  signal.addEventListener('abort', () => {
    stopConnection();
    checkoutAbort?.abort();
  });

  const setTransport = (kind) => {
    transportKind = kind;
    const [cls, text] = TRANSPORT[kind] ?? TRANSPORT.reconnecting;
    transport.className = `badge ${cls}`;
    transport.textContent = text;
    if (kind === 'replaced') renderReplaced();
  };

  const renderNext = (state) => {
    const steps = {
      pre_queue: [
        'When the sale opens, everyone who is here gets a place in a random order — arriving early or late before the opening makes no difference.',
        'Then the line moves forward as people are let in to buy, a few at a time.',
        'When it is your turn, this page changes to checkout and you have a few minutes to buy.',
      ],
      waiting: [
        'Keep this page open. You can reload it or lose your connection: your place is kept.',
        'When it is your turn, this page changes to checkout by itself (the tab title says “Your turn!”).',
        'You then have a few minutes to choose your tickets and buy; after that your place goes to the next person.',
      ],
      admitted: [
        'Choose how many tickets you want and buy before the timer runs out.',
        'Your tickets are reserved when you order; the payment is then confirmed on the order page.',
      ],
    }[state];
    if (!steps) {
      next.hidden = true;
      return;
    }
    next.hidden = false;
    replace(next, h('h2', { id: 'next-heading' }, 'What happens next'), h('ol', { class: 'steps' }, steps.map((s) => h('li', null, s))));
  };

  const renderActions = (state) => {
    if (!['pre_queue', 'waiting', 'admitted'].includes(state)) {
      replace(actions, h('a', { class: 'button secondary', href: '#/' }, 'All events'));
      return;
    }
    const leave = h('button', { class: 'button danger', type: 'button' }, 'Leave the line');
    leave.addEventListener('click', () => {
      replace(
        actions,
        h('p', { role: 'alert' }, 'Leave the line? You will lose your place; joining again puts you at the back.'),
        h('button', { class: 'button danger', type: 'button', onclick: leaveLine }, 'Yes, leave'),
        h('button', { class: 'button secondary', type: 'button', onclick: () => renderActions(place?.state) }, 'Stay in line'),
      );
      actions.querySelector('button')?.focus();
    });
    replace(actions, leave);
  };

  async function leaveLine() {
    stopConnection();
    try {
      await api.post(`/queue/v1/events/${eventId}/leave`, undefined, { auth: true, signal });
    } catch (error) {
      if (error.code !== 'NOT_IN_QUEUE') {
        announce(api.explain(error), true);
        start();
        return;
      }
    }
    progress.reset();
    ctx.navigate(`/events/${eventId}`);
  }

  async function queueAgain() {
    stopConnection();
    checkoutAbort?.abort();
    replace(panel, loading('Joining the line again…'));
    try {
      try {
        await api.post(`/queue/v1/events/${eventId}/leave`, undefined, { auth: true, signal });
      } catch (error) {
        if (error.code !== 'NOT_IN_QUEUE') throw error;
      }
      progress.reset();
      const ticket = await joinQueue(eventId, { signal, onChecking: () => replace(panel, checking()) });
      place = null;
      view = null;
      update(fromTicket(ticket));
      start();
    } catch (error) {
      if (error?.name === 'AbortError') return;
      renderClosedOrError(error);
    }
  }

  const renderClosedOrError = (error) => {
    if (error.code === 'QUEUE_CLOSED') {
      update({ state: 'closed', reason: null });
      return;
    }
    replace(
      panel,
      h('div', { class: 'notice bad', role: 'alert' }, h('p', null, api.explain(error))),
      h('button', { class: 'button', type: 'button', onclick: queueAgain }, 'Try again'),
    );
  };

  function renderWaiting() {
    if (view !== 'waiting') {
      view = 'waiting';
      replace(
        panel,
        h(
          'section',
          { class: 'card queue-hero', 'aria-labelledby': 'place-heading' },
          h('h2', { id: 'place-heading', class: 'caption' }, 'People ahead of you'),
          h('p', { class: 'big-number', id: 'ahead' }),
          h('p', { id: 'ahead-words', class: 'caption' }),
          h('progress', { class: 'meter', id: 'line-progress', max: '100', value: '0', 'aria-label': 'Your progress through the line' }),
          h('p', { id: 'progress-words', class: 'muted' }),
          h('p', { id: 'eta' }),
          h('p', { class: 'status-line' }, h('span', { id: 'number' }), transport),
        ),
      );
    }
    const ahead = place.ahead;
    const aheadEl = panel.querySelector('#ahead');
    const words = panel.querySelector('#ahead-words');
    if (ahead === 0) {
      aheadEl.textContent = '0';
      words.textContent = 'You are next in line.';
    } else if (Number.isFinite(ahead)) {
      aheadEl.textContent = num(ahead);
      words.textContent = 'Your place is kept, even if you reload or lose your connection.';
    } else {
      aheadEl.textContent = '—';
      words.textContent = 'Working out your place…';
    }
    const fraction = progress.fraction(ahead);
    const bar = panel.querySelector('#line-progress');
    bar.value = Math.round(fraction * 100);
    bar.setAttribute('aria-valuetext', `${Math.round(fraction * 100)}% of the way`);
    panel.querySelector('#progress-words').textContent =
      progress.start > 0 ? `${Math.round(fraction * 100)}% of the way since you joined (${count(progress.start, 'person', 'people')} were ahead).` : '';
    panel.querySelector('#number').textContent = place.number ? `Your number: ${num(place.number)}` : '';
    renderEta();
    ctx.setTitle(Number.isFinite(ahead) ? `(${num(ahead)} ahead) ${event.name}` : `Waiting: ${event.name}`);
    const now = Date.now();
    if (Number.isFinite(ahead) && now - lastAnnounced > 30_000) {
      lastAnnounced = now;
      announce(ahead === 0 ? 'You are next in line.' : `${count(ahead, 'person', 'people')} ahead of you.`);
    }
  }

  function renderEta() {
    const el = panel.querySelector('#eta');
    if (!el || !place) return;
    const assessed = assessWait(place, progress);
    const lag = {
      polling: ' Updates may lag a few seconds.',
      reconnecting: ' Updates may lag while we reconnect.',
      offline: ' Updates may lag while we reconnect.',
    }[transportKind] ?? '';
    let text;
    switch (assessed.kind) {
      case 'next':
        text = 'Any moment now.';
        break;
      case 'none':
        text = 'No estimate right now: admissions are on hold or not under way. Your place is kept, and the line moves as soon as they resume.';
        break;
      case 'reserved':
        text = `All tickets are reserved, and ${count(assessed.pending, 'order is', 'orders are')} still being paid. Stay in line: if a payment fails, its tickets go to the next people in line, and you keep your place.`;
        break;
      case 'stalled':
        text = `The line has not moved for ${count(assessed.stillS, 'second', 'seconds')}, most likely while people ahead finish buying. We cannot give an honest estimate until it moves again.`;
        break;
      case 'range':
        text = `Estimated wait: ${waitRange(assessed.low, assessed.high)} — uncertain, because the line is moving more slowly than planned.`;
        break;
      default:
        text = `Estimated wait: ${wait(assessed.seconds)}.`;
    }
    el.textContent = text + lag;
  }

  function renderPreQueue() {
    view = 'pre_queue';
    const opens = Date.parse(event.sale_opens_at);
    const left = h('strong', { id: 'opens-in' });
    replace(
      panel,
      h(
        'section',
        { class: 'card queue-hero', 'aria-labelledby': 'place-heading' },
        h('h2', { id: 'place-heading', class: 'caption' }, 'You are in the line before the sale opens'),
        h('p', null, 'The sale opens ', h('time', { datetime: isoString(event.sale_opens_at) }, dateTime(event.sale_opens_at)), ' (in ', left, ').'),
        h('p', null, 'Everyone who joins before then gets a random place at the opening, so there is no need to hurry or to reload.'),
        h('p', { class: 'status-line' }, transport),
      ),
    );
    const tick = () => {
      const seconds = Math.max(0, (opens - api.serverNow()) / 1000);
      left.textContent = seconds > 0 ? countdown(seconds) : 'a moment';
    };
    tick();
    const timer = setInterval(() => (view === 'pre_queue' ? tick() : clearInterval(timer)), 1000);
    signal.addEventListener('abort', () => clearInterval(timer));
    ctx.setTitle(`Before the sale: ${event.name}`);
  }

  function renderAdmitted() {
    if (view === 'admitted') return;
    view = 'admitted';
    checkoutAbort?.abort();
    checkoutAbort = new AbortController();
    const inner = AbortSignal.any ? AbortSignal.any([signal, checkoutAbort.signal]) : checkoutAbort.signal;
    ctx.setTitle(`Your turn! ${event.name}`);
    announce('It is your turn. Choose your tickets and buy before the timer runs out.', true);
    renderCheckout(panel, {
      event,
      place,
      signal: inner,
      now: api.serverNow,
      onOrdered: (order) => {
        stopConnection();
        ctx.navigate(`/orders/${order.id}`);
      },
      onExpired: () => update({ state: 'expired' }),
      onQueueAgain: queueAgain,
    }).catch((error) => {
      if (error?.name !== 'AbortError') renderError(panel, error);
    });
  }

  function renderExpired() {
    view = 'expired';
    checkoutAbort?.abort();
    ctx.setTitle(`Time ran out: ${event.name}`);
    replace(
      panel,
      h(
        'div',
        { class: 'notice warn', role: 'alert' },
        h('h2', null, 'Your time to buy ran out'),
        h('p', null, 'Your admission was not used in time, so it passed to the next person in line. No order was placed and nothing was charged.'),
        h('p', null, 'You can queue again; you will join at the back of the line.'),
      ),
      h('p', null, h('button', { class: 'button', type: 'button', onclick: queueAgain }, 'Queue again')),
    );
    announce('Your time to buy ran out. You can queue again.', true);
  }

  async function renderClosed() {
    view = 'closed';
    checkoutAbort?.abort();
    let reason = place.reason;
    if (!reason) {
      try {
        const fresh = await api.get(`/api/v1/events/${eventId}`, { signal });
        reason = fresh.status === 'ended' ? 'ended' : 'sold_out';
      } catch {
        reason = 'sold_out';
      }
    }
    if (signal.aborted) return;
    const soldOut = reason !== 'ended';
    ctx.setTitle(`${soldOut ? 'Sold out' : 'Sale ended'}: ${event.name}`);
    replace(
      panel,
      h(
        'div',
        { class: 'notice bad', role: 'alert' },
        h('h2', null, soldOut ? 'Sold out' : 'The sale has ended'),
        h(
          'p',
          null,
          soldOut
            ? 'Every ticket for this event has now been sold, so the line has closed and nobody else will be let in to buy. We are sorry you missed out.'
            : 'This sale has ended, so the line has closed.',
        ),
        soldOut
          ? h('p', null, 'Tickets sometimes come back when an order is not paid; if they do, the event shows “On sale” again and you can queue.')
          : null,
      ),
    );
    announce(soldOut ? 'Sold out. The line has closed.' : 'The sale has ended. The line has closed.', true);
  }

  function renderReplaced() {
    view = 'replaced';
    replace(
      panel,
      h(
        'div',
        { class: 'notice warn', role: 'status' },
        h('h2', null, 'Open in another tab'),
        h('p', null, 'You are following this line in another tab or window, so live updates go there. Your place is the same in both.'),
      ),
      h('p', null, h('button', { class: 'button', type: 'button', onclick: () => {
        view = null;
        if (place) update({});
        conn?.reconnectNow();
      } }, 'Follow it here instead')),
    );
  }

  function renderGone(why) {
    stopConnection();
    view = 'gone';
    if (why === 'signed_out') {
      replace(
        panel,
        h('div', { class: 'notice warn', role: 'alert' }, h('p', null, 'Your sign-in has ended. Log in again — your place in line is kept.')),
        h('a', { class: 'button', href: `#/login?next=${encodeURIComponent(ctx.path)}` }, 'Log in'),
      );
      return;
    }
    renderNotInLine();
  }

  function renderNotInLine() {
    view = 'not_in_line';
    ctx.setTitle(`Not in line: ${event.name}`);
    renderNext(null);
    replace(actions);
    replace(
      panel,
      h('div', { class: 'notice', role: 'status' }, h('p', null, 'You are not in the line for this event.')),
      h('p', null, h('a', { class: 'button', href: `#/events/${eventId}` }, 'Go to the event to join')),
    );
  }

  function update(partial) {
    place = { ...(place ?? {}), ...partial };
    const state = place.state;
    if (state === 'waiting') progress.record(place.ahead);
    if (state !== lastState || (place.number ?? null) !== drawnFor) {
      // The draw's card: its words before the opening, its check once there is a number.
      drawnFor = place.number ?? null;
      draw.show(place);
    }
    if (state !== lastState) {
      renderNext(state);
      renderActions(state);
      if (lastState === 'pre_queue' && state === 'waiting') announce('The sale has opened. You have a place in line.');
      lastState = state;
      if (state !== 'admitted') checkoutAbort?.abort();
      if (state !== 'waiting' && state !== 'admitted') view = null;
    }
    if (view === 'replaced') return;
    switch (state) {
      case 'pre_queue':
        if (view !== 'pre_queue') renderPreQueue();
        break;
      case 'waiting':
        renderWaiting();
        break;
      case 'admitted':
        if (place.gate_token) renderAdmitted();
        break;
      case 'expired':
        if (view !== 'expired') renderExpired();
        break;
      case 'closed':
        if (view !== 'closed') renderClosed();
        break;
      default:
        break;
    }
  }

  function start() {
    stopConnection();
    conn = new QueueConnection(eventId, {
      onPlace: update,
      onTransport: ({ kind }) => {
        setTransport(kind);
        if (view === 'waiting') renderEta();
      },
      onGone: renderGone,
    });
    conn.start();
  }

  // Where the buyer stands now, then live updates.
  let ticket;
  try {
    ticket = await api.get(`/queue/v1/events/${eventId}/status`, { auth: true, signal });
  } catch (error) {
    if (error.code === 'NOT_IN_QUEUE') {
      renderNotInLine();
      return;
    }
    throw error;
  }
  update(fromTicket(ticket));
  if (!['closed', 'expired'].includes(ticket.state)) start();
  // The estimate's wording ages even without new frames (a line that stops moving).
  const etaTimer = setInterval(() => view === 'waiting' && renderEta(), 5_000);
  signal.addEventListener('abort', () => clearInterval(etaTimer));
}
