// Joining a line that asks newcomers to prove they are not a script (428 CHALLENGE_REQUIRED):
// ask for a challenge, solve it in a worker while the page says what it is doing, and join
// with the solution. Someone who already holds a place is never asked.

import * as api from './api.js';
import { h } from './dom.js';

/**
 * Attempts a second a solver makes, from BENCHMARKS.md ("What the join challenge costs"):
 * a mid-range phone (taken as four times slower than the test machine's Chromium, which makes
 * 0.6–1 million) and a script on one core (native, 7.7 million).
 */
export const PHONE_ATTEMPTS_PER_SEC = 200_000;
export const SCRIPT_ATTEMPTS_PER_SEC = 7_700_000;
/** The difficulty offered to operators: about a second and a half on such a phone. */
export const SUGGESTED_DIFFICULTY = 18;

/** Expected seconds to solve at `difficulty` at `rate` attempts a second (2^difficulty tries). */
export const expectedSeconds = (difficulty, rate) => 2 ** difficulty / rate;

/** What the page says while a challenge is solved. */
export const checking = () =>
  h(
    'div',
    { class: 'notice', role: 'status', 'aria-live': 'polite', id: 'person-check' },
    h('p', null, h('span', { class: 'spinner', 'aria-hidden': 'true' }), "Checking that you're a person — a few seconds…"),
    h('p', { class: 'muted' }, 'Your browser is doing a small calculation the waiting room asks of everyone who joins while it is busy. Keep this page open.'),
  );

/** Solves `challenge` at `difficulty` in a Web Worker; resolves with the nonce (a string). */
export function solveInWorker(challenge, difficulty, signal) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./challenge-worker.js', import.meta.url), { type: 'module' });
    const abort = () => {
      worker.terminate();
      reject(new DOMException('The check was stopped', 'AbortError'));
    };
    if (signal?.aborted) return abort();
    signal?.addEventListener('abort', abort, { once: true });
    worker.onmessage = ({ data }) => {
      signal?.removeEventListener('abort', abort);
      worker.terminate();
      resolve(data);
    };
    worker.onerror = () => {
      signal?.removeEventListener('abort', abort);
      worker.terminate();
      reject(new api.ApiError({ code: 'CHALLENGE_FAILED', detail: 'This browser could not run the check. Try another browser.' }));
    };
    worker.postMessage({ challenge, difficulty });
  });
}

/**
 * Joins the line of `eventId` and returns the ticket; `onChecking(challenge)` is called before
 * a challenge is solved (to say so on the page).
 */
export async function joinQueue(eventId, { signal, onChecking } = {}) {
  const join = `/queue/v1/events/${eventId}/join`;
  try {
    return await api.post(join, undefined, { auth: true, signal });
  } catch (error) {
    if (error.code !== 'CHALLENGE_REQUIRED') throw error;
  }
  for (let attempt = 1; ; attempt += 1) {
    const challenge = await api.get(`/queue/v1/events/${eventId}/challenge`, { auth: true, signal });
    onChecking?.(challenge);
    const { nonce } = await solveInWorker(challenge.challenge, challenge.difficulty, signal);
    try {
      return await api.post(join, { challenge: challenge.challenge, nonce }, { auth: true, signal });
    } catch (error) {
      // A slow device outlived its challenge: once more with a new one.
      if (error.code !== 'CHALLENGE_REQUIRED' || attempt >= 3) throw error;
    }
  }
}
