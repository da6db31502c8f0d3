// The draw in the waiting room: before the opening, what the order will be fixed by; after it,
// "Your place was drawn fairly — verify", which checks the buyer's own place in this browser
// against what the waiting room published (public/js/fairness.js).

import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { num, count } from '../format.js';
import { checkPlace } from '../fairness.js';

const short = (hex) => `${hex.slice(0, 12)}…`;

/** A card for `eventId`'s draw; call `show(place)` when the buyer's state changes. */
export function fairnessCard({ eventId, userId, signal }) {
  const card = h('section', { class: 'card', id: 'fairness', 'aria-labelledby': 'fairness-heading', hidden: true });
  let fairness = null;

  const load = async () => {
    try {
      fairness = await api.get(`/queue/v1/events/${eventId}/fairness`, { signal });
    } catch {
      fairness = null; // The card is extra: without the record it stays hidden.
    }
    return fairness;
  };

  const renderSealed = () => {
    card.hidden = false;
    replace(
      card,
      h('h2', { id: 'fairness-heading' }, 'How the places are drawn'),
      h(
        'p',
        null,
        'The order of everyone here is fixed by a secret number the waiting room chose and committed to before anyone joined (commitment ',
        h('code', { title: fairness.commitment }, short(fairness.commitment)),
        '). At the opening it is revealed, and anyone — you too — can check that the places follow from it.',
      ),
    );
  };

  const renderResult = (result, number, out) => {
    if (result.line === null && result.ok) {
      replace(out, h('p', { role: 'status' }, 'You joined after the opening, so your number follows the order of arrival, not the draw.'));
      return;
    }
    if (result.ok) {
      replace(
        out,
        h(
          'p',
          { class: 'notice ok', role: 'status' },
          `Checked in this browser: the revealed seed is the one committed to before the sale, the list of ${count(result.count, 'participant', 'participants')} is the published one, you are on line ${num(result.line)} — your number ${num(number)} — and the people next to you are in the draw's order.`,
        ),
      );
      return;
    }
    replace(
      out,
      h('div', { class: 'notice bad', role: 'alert' }, h('p', null, 'This check failed:'), h('ul', null, result.problems.map((p) => h('li', null, p)))),
    );
  };

  const renderRevealed = (place) => {
    card.hidden = false;
    const out = h('div', { id: 'fairness-result' });
    const verify = h('button', { class: 'button secondary', type: 'button', id: 'verify-draw' }, 'Verify my place');
    verify.addEventListener('click', async () => {
      verify.disabled = true;
      replace(out, h('p', { role: 'status' }, 'Checking the draw…'));
      try {
        const response = await fetch(fairness.participants_url, { signal });
        if (!response.ok) throw new Error(`the list of participants answered ${response.status}`);
        const result = await checkPlace({ fairness, file: await response.arrayBuffer(), eventId, userId, number: place.number });
        renderResult(result, place.number, out);
      } catch (error) {
        if (error?.name === 'AbortError') return;
        replace(out, h('p', { role: 'alert' }, `Could not check the draw: ${error.message}`));
      } finally {
        verify.disabled = false;
      }
    });
    replace(
      card,
      h('h2', { id: 'fairness-heading' }, 'Your place was drawn fairly — verify'),
      h(
        'p',
        null,
        `The ${count(fairness.participants_count, 'person', 'people')} here before the opening were numbered by a published draw. Check that your number follows from it — it takes a moment, in this browser.`,
      ),
      verify,
      out,
    );
  };

  return {
    element: card,
    async show(place) {
      const state = place?.state;
      if (state === 'pre_queue') {
        if (!fairness) await load();
        if (fairness?.commitment) renderSealed();
      } else if ((state === 'waiting' || state === 'admitted') && place.number) {
        if (!fairness?.seed) await load();
        if (fairness?.seed && fairness.participants_count > 0) renderRevealed(place);
        else card.hidden = true;
      } else {
        card.hidden = true;
      }
    },
  };
}
