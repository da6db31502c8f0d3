// Calls to the public contract on this origin: `/api/…` and `/queue/…`. Errors arrive as
// problem+json; clients branch on `code` (docs/contract.md).

import * as session from './session.js';

/** A failed call: the problem's `code`, `detail`, field `errors`, and `Retry-After` seconds. */
export class ApiError extends Error {
  constructor({ status = 0, code = 'NETWORK', title = '', detail = '', errors = [], retryAfter = null }) {
    super(detail || title || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.title = title;
    this.detail = detail;
    this.errors = Array.isArray(errors) ? errors : [];
    this.retryAfter = retryAfter;
  }
}

/** Milliseconds to add to the local clock to get the server's (from `Date` headers). */
let clockOffsets = [];

function noteServerDate(response, sentAt) {
  const header = response.headers.get('date');
  if (!header) return;
  const server = Date.parse(header);
  if (Number.isNaN(server)) return;
  const midpoint = (sentAt + Date.now()) / 2;
  // `Date` has one-second resolution: on average it is half a second behind.
  clockOffsets = [...clockOffsets.slice(-6), server + 500 - midpoint];
}

/** The server's clock now, as well as this browser can tell. */
export function serverNow() {
  if (clockOffsets.length === 0) return Date.now();
  const sorted = [...clockOffsets].sort((a, b) => a - b);
  const offset = sorted[Math.floor(sorted.length / 2)];
  // Within a second or two the local clock is as good as the estimate.
  return Date.now() + (Math.abs(offset) > 1500 ? offset : 0);
}

function retryAfterOf(response) {
  const value = response.headers.get('retry-after');
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

async function problemOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy's page, say.
  }
  return new ApiError({
    status: response.status,
    code: body?.code ?? (response.status >= 500 ? 'UNAVAILABLE' : 'BAD_REQUEST'),
    title: body?.title ?? response.statusText,
    detail: body?.detail ?? '',
    errors: body?.errors ?? [],
    retryAfter: retryAfterOf(response),
  });
}

/**
 * One call. `auth: true` sends the access token (refreshed once if the service says it is
 * stale). Resolves with the JSON body (null for 204); rejects with an ApiError.
 */
export async function call(path, { method = 'GET', body, auth = false, headers = {}, signal } = {}) {
  let token = null;
  for (let attempt = 0; ; attempt += 1) {
    const sent = { accept: 'application/json', ...headers };
    if (auth) {
      try {
        token = attempt === 0 ? await session.accessToken() : await session.refresh(token);
      } catch {
        throw new ApiError({ code: 'NETWORK', detail: 'Cannot reach Flash Tickets to renew your sign-in.' });
      }
      if (!token) throw new ApiError({ status: 401, code: 'UNAUTHENTICATED', detail: 'Please log in.' });
      sent.authorization = `Bearer ${token}`;
    }
    if (body !== undefined) sent['content-type'] = 'application/json';
    const sentAt = Date.now();
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: 'no-store',
      });
    } catch (error) {
      if (error?.name === 'AbortError') throw error;
      throw new ApiError({ code: 'NETWORK', detail: 'No connection to Flash Tickets. Check your network.' });
    }
    noteServerDate(response, sentAt);
    if (response.status === 401 && auth && attempt === 0) continue;
    if (response.status === 204) return null;
    if (!response.ok) throw await problemOf(response);
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
}

export const get = (path, options) => call(path, { ...options, method: 'GET' });
export const post = (path, body, options) => call(path, { ...options, method: 'POST', body });
export const patch = (path, body, options) => call(path, { ...options, method: 'PATCH', body });

/** Words a buyer understands for an error (the service's own detail where it is clear). */
export function explain(error) {
  if (!(error instanceof ApiError)) return 'Something went wrong. Please try again.';
  switch (error.code) {
    case 'NETWORK':
      return error.detail || 'No connection to Flash Tickets. Check your network.';
    case 'RATE_LIMITED':
      return error.retryAfter
        ? `Too many requests at once. Trying again in ${error.retryAfter} s.`
        : 'Too many requests at once. Please wait a moment.';
    case 'UNAVAILABLE':
    case 'TIMEOUT':
    case 'INTERNAL':
      return 'Flash Tickets is having trouble right now. Please try again in a moment.';
    case 'UNAUTHENTICATED':
      return 'Your sign-in has ended. Please log in again.';
    case 'FORBIDDEN':
      return 'This page is for operators only.';
    default:
      return error.detail || error.title || 'Something went wrong. Please try again.';
  }
}
