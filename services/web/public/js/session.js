// The signed-in buyer or operator: tokens kept in localStorage (shared by the site's tabs, so a
// reload keeps the place in line), refreshed before they expire, one tab at a time (refresh
// tokens rotate: two tabs using the same one would sign each other out).

const KEY = 'flash.session';
/** Refresh this long before the access token expires. */
const EARLY_MS = 60_000;

const listeners = new Set();
let current = load() ?? null;
let refreshing = null;

/** The stored session: null when signed out, undefined when storage cannot be read. */
function load() {
  let raw;
  try {
    raw = localStorage.getItem(KEY);
  } catch {
    return undefined;
  }
  if (!raw) return null;
  try {
    const value = JSON.parse(raw);
    return value && typeof value.access === 'string' && typeof value.refresh === 'string' ? value : null;
  } catch {
    return null;
  }
}

/** What is stored, or what this tab holds when storage is out of reach. */
function latest() {
  const stored = load();
  return stored === undefined ? current : stored;
}

function save(value) {
  current = value;
  try {
    if (value) localStorage.setItem(KEY, JSON.stringify(value));
    else localStorage.removeItem(KEY);
  } catch {
    // Private mode without storage: the session lives in this tab only.
  }
  notify();
}

function notify() {
  for (const listener of listeners) listener(user());
}

window.addEventListener('storage', (event) => {
  if (event.key === KEY || event.key === null) {
    current = latest();
    notify();
  }
});

/** The claims of a JWT (not verified: the services verify; this only reads the role). */
function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='));
    return JSON.parse(json);
  } catch {
    return {};
  }
}

/** `{id, role, email}` of the signed-in user, or null. */
export function user() {
  if (!current) return null;
  const c = claims(current.access);
  return { id: c.sub, role: c.role === 'admin' ? 'admin' : 'user', email: current.email ?? '' };
}

export function isAdmin() {
  return user()?.role === 'admin';
}

/** Calls `fn(user)` whenever the user signs in or out (in any tab); returns the unsubscribe. */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Keeps the tokens of a login or refresh answer. */
export function signIn(tokens, email) {
  save({
    access: tokens.access_token,
    refresh: tokens.refresh_token,
    expiresAt: Date.now() + Number(tokens.expires_in) * 1000,
    email: email ?? current?.email ?? '',
  });
}

export function signOut() {
  save(null);
}

/** An access token valid for at least a minute, refreshing it when needed; null when signed out. */
export async function accessToken() {
  const stored = latest();
  current = stored;
  if (!stored) return null;
  if (stored.expiresAt - Date.now() > EARLY_MS) return stored.access;
  return refresh(stored.access);
}

/**
 * A new access token, unless another tab already replaced `stale`. Signs out when the refresh
 * token is refused; keeps the session on a network failure (the caller sees the error).
 */
export function refresh(stale) {
  if (!refreshing) {
    const run = () => refreshNow(stale);
    const locked = navigator.locks?.request ? navigator.locks.request('flash.refresh', run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function refreshNow(stale) {
  const stored = latest();
  current = stored;
  if (!stored) return null;
  if (stored.access !== stale && stored.expiresAt - Date.now() > EARLY_MS) {
    current = stored;
    return stored.access;
  }
  const response = await fetch('/api/v1/auth/refresh', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ refresh_token: stored.refresh }),
  });
  if (response.status === 401) {
    signOut();
    return null;
  }
  if (!response.ok) throw new Error(`refresh failed: ${response.status}`);
  const tokens = await response.json();
  signIn(tokens, stored.email);
  return tokens.access_token;
}
