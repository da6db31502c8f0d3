// One buyer's live place in an event's queue: a WebSocket when it works (auth frame first, then
// position / admitted / closed frames), reconnecting with backoff and keeping the place (the
// place is in the gateway, not in the socket); polling `GET …/status` when WebSockets keep
// failing, with a fresh WebSocket attempt every 30 s.

import * as api from './api.js';
import * as session from './session.js';

const PING_MS = 25_000;
/** No frame (not even a pong) for this long: the socket is dead even if the browser thinks not. */
const SILENCE_MS = 65_000;
/** A socket that has not delivered its first frame by then counts as failed. */
const FIRST_FRAME_MS = 10_000;
const POLL_MS = 3_000;
const WS_RETRY_WHILE_POLLING_MS = 30_000;
/** Failed WebSocket attempts in a row before polling takes over. */
const FAILURES_BEFORE_POLLING = 3;

/**
 * A restarting gateway (1012) closes its sockets spread over a few seconds; each client also
 * waits a random moment up to this long before it polls and reconnects, so the other replicas
 * are not met by every buyer of a replica in the same instant.
 */
const RESTART_SPREAD_MS = 3_000;
/** Polling starts after a random moment up to this long, not in step with every other page. */
const FIRST_POLL_JITTER_MS = 1_000;

const CLOSE_NORMAL = 1000;
const CLOSE_SERVICE_RESTART = 1012;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_NOT_IN_QUEUE = 4404;
const CLOSE_REPLACED = 4409;

/** The place as the view needs it, from a `Ticket` (status) or a frame (WebSocket). */
export function fromTicket(ticket) {
  return {
    state: ticket.state,
    number: ticket.number ?? null,
    ahead: ticket.ahead ?? null,
    eta_s: ticket.eta_s ?? null,
    reserved_pending: ticket.reserved_pending ?? 0,
    gate_token: ticket.gate_token ?? null,
    gate_expires_at: ticket.gate_expires_at ?? null,
    reason: null,
  };
}

function fromFrame(frame) {
  switch (frame.type) {
    case 'position':
      return {
        state: frame.state,
        number: frame.number ?? null,
        ahead: frame.ahead ?? null,
        eta_s: frame.eta_s ?? null,
        reserved_pending: frame.reserved_pending ?? 0,
      };
    case 'admitted':
      return { state: 'admitted', gate_token: frame.gate_token, gate_expires_at: frame.expires_at, ahead: 0, eta_s: 0 };
    case 'closed':
      return { state: 'closed', reason: frame.reason, ahead: null, eta_s: null };
    default:
      return null;
  }
}

/**
 * Follows one event's place. Callbacks: `onPlace(partial place)`, `onTransport({kind, …})` with
 * kind `connecting`, `live`, `reconnecting`, `polling`, `offline` or `replaced`, and
 * `onGone(why)` with why `not_in_queue` or `signed_out`.
 */
export class QueueConnection {
  constructor(eventId, { onPlace, onTransport, onGone }) {
    this.eventId = eventId;
    this.onPlace = onPlace;
    this.onTransport = onTransport;
    this.onGone = onGone;
    this.stopped = false;
    this.finished = false;
    this.ws = null;
    this.failures = 0;
    this.mode = 'ws';
    this.retryTimer = null;
    this.pollTimer = null;
    this.reauthenticated = false;
    this.lastFrameAt = 0;
    this.pollAbort = null;
    this.onOnline = () => this.reconnectNow();
    this.onVisible = () => {
      if (document.visibilityState === 'visible') this.reconnectNow(false);
    };
  }

  start() {
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.retryTimer);
    clearTimeout(this.pollTimer);
    this.pollAbort?.abort();
    this.closeSocket();
  }

  /** Tries the WebSocket again at once (back online, or the buyer asked; `force` also while polling). */
  reconnectNow(force = true) {
    if (this.stopped || this.finished) return;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    if (!force && this.mode === 'poll') return;
    this.failures = 0;
    this.retryLater(0);
  }

  /** The next WebSocket attempt (one pending at a time). */
  retryLater(ms) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.stopped) this.connect();
    }, ms);
  }

  /** The next status poll (one pending at a time). */
  pollLater(ms) {
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => {
      if (!this.stopped) this.poll();
    }, ms);
  }

  closeSocket() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(CLOSE_NORMAL);
      } catch {
        // Already closing.
      }
    }
    clearInterval(this.pinger);
  }

  async connect() {
    if (this.stopped || this.finished) return;
    this.closeSocket();
    if (this.mode === 'ws') this.onTransport({ kind: this.failures === 0 ? 'connecting' : 'reconnecting' });
    let token;
    try {
      token = await session.accessToken();
    } catch {
      this.failed();
      return;
    }
    if (this.stopped) return;
    if (!token) {
      this.onGone('signed_out');
      return;
    }
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${window.location.host}/queue/v1/events/${this.eventId}/ws`);
    } catch {
      this.failed();
      return;
    }
    this.ws = ws;
    let delivered = false;
    const firstFrame = setTimeout(() => {
      if (!delivered && this.ws === ws) {
        this.closeSocket();
        this.failed();
      }
    }, FIRST_FRAME_MS);
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'auth', token }));
    };
    ws.onmessage = (message) => {
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!delivered) {
        delivered = true;
        clearTimeout(firstFrame);
        this.failures = 0;
        this.reauthenticated = false;
        this.switchToSocket();
        this.startHeartbeat(ws);
      }
      const place = fromFrame(frame);
      if (place) this.onPlace(place);
      if (frame.type === 'closed') this.finished = true;
    };
    ws.onerror = () => {
      // onclose follows with the code.
    };
    ws.onclose = (event) => {
      clearTimeout(firstFrame);
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pinger);
      this.closed(event.code, token);
    };
  }

  startHeartbeat(ws) {
    clearInterval(this.pinger);
    this.pinger = setInterval(() => {
      if (this.ws !== ws) return;
      if (Date.now() - this.lastFrameAt > SILENCE_MS) {
        this.closeSocket();
        this.failed();
        return;
      }
      try {
        ws.send(JSON.stringify({ type: 'ping' }));
      } catch {
        // onclose handles it.
      }
    }, PING_MS);
  }

  switchToSocket() {
    if (this.mode === 'poll') {
      this.mode = 'ws';
      clearTimeout(this.pollTimer);
      this.pollAbort?.abort();
    }
    clearTimeout(this.retryTimer);
    this.onTransport({ kind: 'live' });
  }

  async closed(code, token) {
    if (this.stopped) return;
    if (this.finished || code === CLOSE_NORMAL) {
      this.finished = true;
      return;
    }
    if (code === CLOSE_REPLACED) {
      this.onTransport({ kind: 'replaced' });
      return;
    }
    if (code === CLOSE_UNAUTHENTICATED) {
      if (this.reauthenticated) {
        this.onGone('signed_out');
        return;
      }
      this.reauthenticated = true;
      try {
        const fresh = await session.refresh(token);
        if (!fresh) {
          this.onGone('signed_out');
          return;
        }
      } catch {
        // Network trouble: retried like any other failure.
      }
      this.connect();
      return;
    }
    if (code === CLOSE_NOT_IN_QUEUE) {
      // Joined in another tab and left, or the place was given up: the status call tells.
      await this.pollOnce();
      if (!this.stopped && !this.finished) this.failed();
      return;
    }
    if (code === CLOSE_SERVICE_RESTART) {
      // The replica is restarting, and so are its other sockets: catch up and reconnect after a
      // random moment, not all at once (the place is kept meanwhile).
      const wait = Math.random() * RESTART_SPREAD_MS;
      this.onTransport({ kind: 'reconnecting', retryInMs: Math.round(wait) });
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        if (this.stopped || this.finished) return;
        this.pollOnce();
        this.failed();
      }, wait);
      return;
    }
    // 1011 (store trouble), 1006 (dropped): catch up at once, then reconnect.
    this.pollOnce();
    this.failed();
  }

  failed() {
    if (this.stopped || this.finished) return;
    this.failures += 1;
    if (this.mode === 'ws' && this.failures >= FAILURES_BEFORE_POLLING) {
      this.mode = 'poll';
      this.onTransport({ kind: 'polling' });
    }
    if (this.mode === 'poll') {
      this.pollLater(Math.random() * FIRST_POLL_JITTER_MS);
      this.retryLater(WS_RETRY_WHILE_POLLING_MS);
      return;
    }
    const backoff = Math.min(10_000, 500 * 2 ** (this.failures - 1));
    const jitter = Math.random() * 0.3 * backoff;
    this.onTransport({ kind: navigator.onLine === false ? 'offline' : 'reconnecting', retryInMs: backoff });
    this.retryLater(backoff + jitter);
  }

  /** One status call: `{ok}`, with the error when it failed, `aborted` when superseded. */
  async pollOnce() {
    this.pollAbort?.abort();
    const abort = new AbortController();
    this.pollAbort = abort;
    try {
      const ticket = await api.get(`/queue/v1/events/${this.eventId}/status`, { auth: true, signal: abort.signal });
      if (!this.stopped) this.onPlace(fromTicket(ticket));
      return { ok: true };
    } catch (error) {
      if (error?.name === 'AbortError' || this.stopped) return { ok: false, aborted: true };
      if (error.code === 'NOT_IN_QUEUE') {
        this.finished = true;
        this.onGone('not_in_queue');
      } else if (error.code === 'UNAUTHENTICATED') {
        this.finished = true;
        this.onGone('signed_out');
      }
      return { ok: false, error };
    }
  }

  async poll() {
    if (this.stopped || this.finished || this.mode !== 'poll') return;
    const { ok, error, aborted } = await this.pollOnce();
    if (this.stopped || this.finished || this.mode !== 'poll') return;
    if (aborted) {
      this.pollLater(POLL_MS);
      return;
    }
    let wait = POLL_MS;
    if (!ok && error?.code === 'RATE_LIMITED') wait = Math.max(POLL_MS, (error.retryAfter ?? 3) * 1000);
    else if (!ok && error) wait = POLL_MS * 2;
    this.onTransport({ kind: ok ? 'polling' : 'offline' });
    this.pollLater(wait);
  }
}
