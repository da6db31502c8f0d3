// How a buyer's line moves, and what can honestly be said about the wait. The gateway's
// `eta_s` assumes the configured admission rate; when the line moves more slowly than that
// (admissions held back while earlier buyers check out, a paused queue), this says so instead
// of repeating a number that is not coming true.

const WINDOW_MS = 90_000;
/** Observed progress needs this much history before it is trusted. */
const MIN_HISTORY_MS = 15_000;

function storageKey(eventId) {
  return `flash.progress.${eventId}`;
}

export class LineProgress {
  constructor(eventId, now = Date.now()) {
    this.eventId = eventId;
    this.samples = [];
    this.lastMoveAt = now;
    this.start = null;
    try {
      const saved = JSON.parse(sessionStorage.getItem(storageKey(eventId)) ?? 'null');
      if (saved && Number.isFinite(saved.ahead)) this.start = saved.ahead;
    } catch {
      // No storage: progress starts from what this page sees.
    }
  }

  /** Forgets the line (after leaving it, or queueing again). */
  reset() {
    this.samples = [];
    this.start = null;
    this.lastMoveAt = Date.now();
    try {
      sessionStorage.removeItem(storageKey(this.eventId));
    } catch {
      // Nothing kept.
    }
  }

  /** Notes the number of people ahead at `now`. */
  record(ahead, now = Date.now()) {
    if (!Number.isFinite(ahead)) return;
    const last = this.samples.at(-1);
    if (last && ahead < last.ahead) this.lastMoveAt = now;
    if (!last || last.ahead !== ahead || now - last.at > 5_000) this.samples.push({ at: now, ahead });
    this.samples = this.samples.filter((s) => now - s.at <= WINDOW_MS);
    if (this.start === null || ahead > this.start) {
      this.start = ahead;
      try {
        sessionStorage.setItem(storageKey(this.eventId), JSON.stringify({ ahead }));
      } catch {
        // Nothing kept.
      }
    }
  }

  /** Share of the line behind the buyer since they first saw it, 0 to 1. */
  fraction(ahead) {
    if (!Number.isFinite(ahead) || !this.start) return ahead === 0 ? 1 : 0;
    return Math.min(1, Math.max(0, 1 - ahead / this.start));
  }

  /** People admitted per second lately, or null without enough history. */
  observedRate(now = Date.now()) {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || now - first.at < MIN_HISTORY_MS) return null;
    const seconds = (now - first.at) / 1000;
    return Math.max(0, first.ahead - last.ahead) / seconds;
  }

  /** Milliseconds since the line last moved. */
  stillFor(now = Date.now()) {
    return now - this.lastMoveAt;
  }
}

/**
 * What to say about the wait: `{kind, seconds?, low?, high?, stillS?}` with kind
 * `next` (no one ahead), `none` (no estimate: admissions on hold or not under way),
 * `estimate` (the gateway's figure holds up), `range` (moving slower than planned), or
 * `stalled` (not moving at all lately).
 */
export function assessWait({ ahead, eta_s: eta, reserved_pending: reserved = 0 }, progress, now = Date.now()) {
  // No ticket is left, but orders are still being paid: the line waits for one to come back.
  if (reserved > 0) return { kind: 'reserved', pending: reserved };
  if (ahead === 0) return { kind: 'next' };
  if (eta === null || eta === undefined || !Number.isFinite(ahead)) return { kind: 'none' };
  const planned = (ahead + 1) / Math.max(eta, 1);
  const observed = progress.observedRate(now);
  const stillMs = progress.stillFor(now);
  const expectedGapMs = 1000 / Math.max(planned, 0.001);
  if (observed !== null && stillMs > Math.max(20_000, 4 * expectedGapMs)) {
    return { kind: 'stalled', stillS: Math.round(stillMs / 1000) };
  }
  if (observed !== null && observed > 0 && observed < planned * 0.6) {
    return { kind: 'range', low: eta, high: (ahead + 1) / observed };
  }
  return { kind: 'estimate', seconds: eta };
}
