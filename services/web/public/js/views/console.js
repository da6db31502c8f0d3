// The live queue console of one event: waiting, admitted, serving, admission rate, stock and
// orders by status, with small charts over time; change the rate and the most buying at once;
// pause and resume admissions; turn the bot check (the join challenge) up or off.

import * as api from '../api.js';
import { h, replace, loading, sleep, isAbort } from '../dom.js';
import { num, dateTime, isoString, EVENT_STATUS } from '../format.js';
import { badge, requireAdmin } from '../app.js';
import { sparkline } from '../chart.js';
import { field, errorReporter, errorSummary } from '../forms.js';
import { auditLog } from './audit-log.js';
import { PHONE_ATTEMPTS_PER_SEC, SCRIPT_ATTEMPTS_PER_SEC, SUGGESTED_DIFFICULTY, expectedSeconds } from '../challenge.js';

const QUEUE_STATE = {
  scheduled: 'Before the sale (pre-queue)',
  open: 'Admitting',
  paused: 'Paused',
  closed: 'Closed',
};

export default async function consoleView(ctx) {
  if (!requireAdmin(ctx)) return;
  const { signal } = ctx;
  const id = ctx.params.id;
  ctx.setTitle('Live console');
  replace(ctx.root, loading('Loading the event…'));
  let event;
  try {
    event = await api.get(`/api/v1/events/${id}`, { signal });
  } catch (error) {
    if (error.code === 'EVENT_NOT_FOUND' || error.code === 'VALIDATION') {
      replace(ctx.root, h('h1', null, 'Event not found'), h('p', null, h('a', { href: '#/admin' }, 'Back to the console')));
      return;
    }
    throw error;
  }
  ctx.setTitle(`Console: ${event.name}`);

  // Figures.
  const tile = (label, idName) => {
    const value = h('dd', { id: idName }, '—');
    return { el: h('div', { class: 'tile' }, h('dt', null, label), value), value };
  };
  const tiles = {
    state: tile('Queue', 'q-state'),
    waiting: tile('Waiting', 'q-waiting'),
    admitted: tile('Buying now', 'q-admitted'),
    rate: tile('Admissions / s', 'q-rate'),
    serving: tile('Served', 'q-serving'),
    stock: tile('Tickets left', 'q-stock'),
    pending: tile('Orders being paid', 'o-pending'),
    paid: tile('Paid orders', 'o-paid'),
    failed: tile('Payments failed', 'o-failed'),
    expired: tile('Orders expired', 'o-expired'),
  };
  const charts = {
    waiting: sparkline({ title: 'Waiting' }),
    rate: sparkline({ title: 'Admissions per second', format: (v) => v.toFixed(1) }),
    stock: sparkline({ title: 'Tickets left' }),
    paid: sparkline({ title: 'Paid orders' }),
  };
  const notice = h('div', { 'aria-live': 'polite' });
  const eventStatus = h('span');

  // Controls.
  const rateField = field({ label: 'Admissions per second', name: 'admit_per_sec', type: 'number', min: '1', max: '100000', inputmode: 'numeric', required: true });
  const activeField = field({ label: 'Buying at once, at most', name: 'max_active', type: 'number', min: '1', max: '1000000', inputmode: 'numeric', required: true });
  const summary = errorSummary();
  const errors = errorReporter(summary, { admit_per_sec: rateField, max_active: activeField });
  const apply = h('button', { class: 'button', type: 'submit' }, 'Apply');
  const saved = h('p', { role: 'status', class: 'muted after-button' });
  const settings = h(
    'form',
    { class: 'card form', novalidate: true, 'aria-labelledby': 'rate-heading' },
    h('h2', { id: 'rate-heading' }, 'Admission rate'),
    summary,
    rateField.wrap,
    activeField.wrap,
    apply,
    saved,
  );
  // The bot check: the join challenge's difficulty, with what it costs a person and a script.
  const difficultyField = field({ label: 'Bot check difficulty (0 = off)', name: 'challenge_difficulty', type: 'number', min: '0', max: '32', inputmode: 'numeric', required: true });
  const difficultyCost = h('p', { class: 'muted', id: 'challenge-cost', 'aria-live': 'polite' });
  const difficultySaved = h('p', { role: 'status', class: 'muted after-button' });
  const difficultyApply = h('button', { class: 'button', type: 'submit' }, 'Apply bot check');
  const describeDifficulty = () => {
    const text = difficultyField.input.value.trim();
    const d = Number(text);
    if (!/^\d+$/.test(text) || d > 32) {
      difficultyCost.textContent = 'A whole number from 0 to 32.';
    } else if (d === 0) {
      difficultyCost.textContent = `Off: anyone signed in joins at once. ${SUGGESTED_DIFFICULTY} is suggested when bots come.`;
    } else {
      const seconds = (rate) => {
        const s = expectedSeconds(d, rate);
        return s < 1 ? `${Math.max(1, Math.round(s * 1000))} ms` : `${s.toFixed(s < 10 ? 1 : 0)} s`;
      };
      difficultyCost.textContent = `A person on a mid-range phone waits about ${seconds(PHONE_ATTEMPTS_PER_SEC)}; a script pays about ${seconds(SCRIPT_ATTEMPTS_PER_SEC)} of one core per place. People already in line are never asked.`;
    }
  };
  difficultyField.input.addEventListener('input', describeDifficulty);
  const difficultySummary = errorSummary();
  const difficultyErrors = errorReporter(difficultySummary, { challenge_difficulty: difficultyField });
  const botCheck = h(
    'form',
    { class: 'card form', novalidate: true, 'aria-labelledby': 'bot-heading' },
    h('h2', { id: 'bot-heading' }, 'Bot check'),
    h('p', { class: 'muted' }, 'Newcomers solve a small puzzle in their browser before they get a place: invisible to people at the suggested setting, a cost per place for a bot farm.'),
    difficultySummary,
    difficultyField.wrap,
    difficultyCost,
    difficultyApply,
    difficultySaved,
  );
  let difficultyFilled = false;

  const pause = h('button', { class: 'button big', type: 'button' }, 'Pause admissions');
  const pauseWords = h('p', { role: 'status', class: 'after-button' });
  const pausing = h(
    'section',
    { class: 'card', 'aria-labelledby': 'pause-heading' },
    h('h2', { id: 'pause-heading' }, 'Pause and resume'),
    h('p', { class: 'muted' }, 'Paused, nobody new is let in to buy; people keep their places, and those already buying can finish.'),
    pause,
    pauseWords,
  );

  const changes = auditLog({ eventId: id, signal });
  replace(
    ctx.root,
    h('p', { class: 'muted' }, h('a', { href: '#/admin' }, '← Console')),
    h('h1', null, event.name),
    h(
      'p',
      { class: 'row' },
      eventStatus,
      h('span', { class: 'muted' }, event.venue, ' · ', h('time', { datetime: isoString(event.starts_at) }, dateTime(event.starts_at))),
      h('a', { href: `#/events/${id}` }, 'Buyer’s page'),
    ),
    notice,
    h('h2', null, 'Live'),
    h('dl', { class: 'tiles' }, Object.values(tiles).map((t) => t.el)),
    h('div', { class: 'controls' }, pausing, settings, botCheck),
    h('h2', null, 'Over time'),
    h('div', { class: 'charts' }, Object.values(charts).map((c) => c.el)),
    h('p', { class: 'muted' }, 'Charts cover the last five minutes while this page is open; figures refresh every second.'),
    changes.element,
  );
  replace(eventStatus, badge(event.status, EVENT_STATUS[event.status] ?? event.status));

  let queue = null;
  let servedSamples = [];
  let formFilled = false;

  const renderQueue = () => {
    if (!queue) return;
    const held = queue.state === 'open' && queue.reserved_pending > 0;
    tiles.state.value.replaceChildren(held
      ? badge('held', `Holding: ${num(queue.reserved_pending)} orders still being paid`)
      : badge(queue.state, QUEUE_STATE[queue.state] ?? queue.state));
    tiles.waiting.value.textContent = num(queue.waiting);
    replace(tiles.admitted.value, num(queue.admitted_active), ' ', h('small', null, `of ${num(queue.max_active)}`));
    replace(tiles.serving.value, num(queue.serving), ' ', h('small', null, `of ${num(queue.last_number)}`));
    const now = Date.now();
    servedSamples = [...servedSamples.filter((s) => now - s.at <= 5_000), { at: now, serving: queue.serving }];
    const first = servedSamples[0];
    const observed = now - first.at >= 900 ? ((queue.serving - first.serving) * 1000) / (now - first.at) : 0;
    replace(tiles.rate.value, observed.toFixed(1), ' ', h('small', null, `set ${num(queue.admit_per_sec)}`));
    charts.waiting.push(queue.waiting, now);
    charts.rate.push(observed, now);
    const paused = queue.state === 'paused';
    pause.textContent = paused ? 'Resume admissions' : 'Pause admissions';
    pause.disabled = queue.state === 'closed';
    pauseWords.textContent = {
      paused: 'Admissions are paused.',
      closed: 'The queue is closed (sold out or ended): there is nothing to pause.',
      scheduled: 'The sale has not opened; pausing holds admissions once it does.',
    }[queue.state] ?? (held
      ? 'Sold out while orders are being paid: nobody is admitted until a ticket comes back, and the queue closes if none can.'
      : 'Admitting.');
    if (!difficultyFilled && !botCheck.contains(document.activeElement)) {
      difficultyField.input.value = String(queue.challenge_difficulty ?? 0);
      describeDifficulty();
      difficultyFilled = true;
    }
    if (!formFilled && !settings.contains(document.activeElement)) {
      rateField.input.value = String(queue.admit_per_sec);
      activeField.input.value = String(queue.max_active);
      formFilled = true;
    }
  };

  const renderStats = (stats) => {
    replace(tiles.stock.value, num(stats.remaining), ' ', h('small', null, `of ${num(stats.inventory)}`));
    tiles.pending.value.textContent = num(stats.orders.pending_payment);
    tiles.paid.value.textContent = num(stats.orders.paid);
    tiles.failed.value.textContent = num(stats.orders.payment_failed);
    tiles.expired.value.textContent = num(stats.orders.expired);
    charts.stock.push(stats.remaining);
    charts.paid.push(stats.orders.paid);
  };

  const showNotice = (text, tone = 'warn') => {
    replace(notice, text ? h('div', { class: `notice ${tone}` }, h('p', null, text)) : null);
  };

  // Pause and resume.
  pause.addEventListener('click', async () => {
    if (!queue || pause.getAttribute('aria-disabled') === 'true') return;
    const want = queue.state !== 'paused';
    pause.setAttribute('aria-disabled', 'true');
    try {
      queue = await api.patch(`/queue/v1/admin/events/${id}`, { paused: want }, { auth: true, signal });
      renderQueue();
      pauseWords.textContent = want ? 'Admissions are paused.' : 'Admissions resumed.';
    } catch (error) {
      if (!isAbort(error)) pauseWords.textContent = `Could not ${want ? 'pause' : 'resume'}: ${api.explain(error)}`;
    } finally {
      pause.removeAttribute('aria-disabled');
    }
  });

  // Rate and the most buying at once: saved on the event (so they last) and applied to the
  // live queue at once.
  settings.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (apply.getAttribute('aria-disabled') === 'true') return;
    const problems = [];
    const read = (f, name, lo, hi) => {
      const text = f.input.value.trim();
      const n = Number(text);
      if (!/^\d+$/.test(text) || n < lo || n > hi) {
        problems.push({ field: name, message: `Enter a whole number from ${lo.toLocaleString()} to ${hi.toLocaleString()}` });
      }
      return n;
    };
    const rate = read(rateField, 'admit_per_sec', 1, 100_000);
    const active = read(activeField, 'max_active', 1, 1_000_000);
    if (problems.length) {
      errors.show(problems);
      return;
    }
    errors.clear();
    apply.setAttribute('aria-disabled', 'true');
    saved.textContent = 'Saving…';
    try {
      await api.patch(`/api/v1/admin/events/${id}`, { queue: { admit_per_sec: rate, max_active: active } }, { auth: true, signal });
      queue = await api.patch(`/queue/v1/admin/events/${id}`, { admit_per_sec: rate, max_active: active }, { auth: true, signal });
      renderQueue();
      saved.textContent = `Saved: ${num(rate)} per second, at most ${num(active)} buying at once.`;
    } catch (error) {
      if (isAbort(error)) return;
      saved.textContent = '';
      if (error.code === 'VALIDATION' && error.errors.length) {
        errors.show(error.errors.map((x) => ({ field: x.field.replace(/^queue\./, ''), message: x.message })));
      } else {
        errors.show([{ field: '', message: api.explain(error) }], 'Could not save');
      }
    } finally {
      apply.removeAttribute('aria-disabled');
    }
  });

  // The bot check lives in the waiting room only (the gateway owns it once the queue exists).
  botCheck.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (difficultyApply.getAttribute('aria-disabled') === 'true') return;
    const text = difficultyField.input.value.trim();
    const d = Number(text);
    if (!/^\d+$/.test(text) || d > 32) {
      difficultyErrors.show([{ field: 'challenge_difficulty', message: 'Enter a whole number from 0 to 32' }]);
      return;
    }
    difficultyErrors.clear();
    difficultyApply.setAttribute('aria-disabled', 'true');
    try {
      queue = await api.patch(`/queue/v1/admin/events/${id}`, { challenge_difficulty: d }, { auth: true, signal });
      renderQueue();
      difficultySaved.textContent = d === 0 ? 'Saved: the bot check is off.' : `Saved: bot check at ${d}.`;
    } catch (error) {
      if (!isAbort(error)) difficultyErrors.show([{ field: '', message: api.explain(error) }], 'Could not save');
    } finally {
      difficultyApply.removeAttribute('aria-disabled');
    }
  });

  // Polling: the queue every second, stock and orders every two, the event every five.
  let round = 0;
  const refresh = async () => {
    try {
      const [fresh, stats, latest] = await Promise.all([
        api.get(`/queue/v1/admin/events/${id}`, { auth: true, signal }).catch((error) => {
          if (error.code === 'EVENT_NOT_FOUND') return null;
          throw error;
        }),
        round % 2 === 0 ? api.get(`/api/v1/admin/events/${id}/stats`, { auth: true, signal }) : null,
        round % 5 === 0 ? api.get(`/api/v1/events/${id}`, { signal }) : null,
        round % 5 === 0 ? changes.refresh() : null,
      ]);
      if (fresh) {
        queue = fresh;
        renderQueue();
        showNotice(null);
      } else {
        showNotice('The waiting room has not heard of this event yet; it is told within moments of its creation.', 'info');
      }
      if (stats) renderStats(stats);
      if (latest) {
        event = latest;
        replace(eventStatus, badge(event.status, EVENT_STATUS[event.status] ?? event.status));
      }
    } catch (error) {
      if (isAbort(error) || error.code === 'UNAUTHENTICATED' || error.code === 'FORBIDDEN') throw error;
      showNotice(`Figures may be stale: ${api.explain(error)}`, 'bad');
    } finally {
      round += 1;
    }
  };
  await refresh();
  (async () => {
    for (;;) {
      await sleep(1000, signal);
      await refresh();
    }
  })().catch((error) => {
    if (!isAbort(error)) showNotice(api.explain(error), 'bad');
  });
}
