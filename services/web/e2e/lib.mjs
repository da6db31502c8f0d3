// What every end-to-end script shares: Debian's Chromium through playwright-core with a fresh
// profile, calls to the public contract, accessibility checks (axe-core), screenshots, and a
// watch on the page (script errors, CSP violations, anything fetched from another origin).
//
// Environment: BASE_URL (the suite's origin), ARTIFACTS (screenshots), CHROMIUM (the browser),
// ADMIN_EMAIL / ADMIN_PASSWORD (the bootstrap admin).

import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join as pathJoin } from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

export const BASE = (process.env.BASE_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
export const ARTIFACTS = process.env.ARTIFACTS ?? pathJoin(process.cwd(), 'artifacts', 'web');
export const ADMIN = {
  email: process.env.ADMIN_EMAIL ?? 'admin@flash.local',
  password: process.env.ADMIN_PASSWORD ?? 'flash-admin-local',
};
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 900 };

/** A failed expectation. */
export function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`);
}

export function log(...parts) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...parts);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns something truthy, or fails after `ms` with `what`. */
export async function until(what, fn, ms = 20_000, every = 200) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms: ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/** A unique name part for this run. */
export function unique() {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

// --- The public contract ------------------------------------------------------------------

/** A JSON call: `{status, body, headers}` (never throws on an HTTP status). */
export async function call(method, path, { token, body, headers = {} } = {}) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: {
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

export async function expectCall(status, method, path, options) {
  const reply = await call(method, path, options);
  check(reply.status === status, `${method} ${path}: expected ${status}, got ${reply.status} ${JSON.stringify(reply.body)}`);
  return reply.body;
}

export async function login(email, password) {
  return (await expectCall(200, 'POST', '/api/v1/auth/login', { body: { email, password } })).access_token;
}

/** A new buyer through the public api: `{email, password, token, id}`. */
export async function buyer(tag) {
  const email = `${tag}-${unique()}@flash.test`;
  const password = 'a long buyer password';
  const { user_id: id } = await expectCall(201, 'POST', '/api/v1/auth/register', { body: { email, password } });
  return { email, password, id, token: await login(email, password) };
}

/** An event on sale now (or opening in `opensInMs`), created by the admin through the api. */
export async function createEvent(adminToken, { name, inventory, maxPerUser, queue, opensInMs = -60_000 }) {
  const now = Date.now();
  return expectCall(201, 'POST', '/api/v1/admin/events', {
    token: adminToken,
    body: {
      name,
      venue: 'Test Hall, Loopback',
      starts_at: new Date(now + 7 * 86_400_000).toISOString(),
      sale_opens_at: new Date(now + opensInMs).toISOString(),
      price_cents: 2500,
      currency: 'EUR',
      inventory,
      max_per_user: maxPerUser,
      queue,
    },
  });
}

/** Joins once the gateway has heard of the event (it learns through the broker). */
export async function join(token, eventId) {
  return until(`the gateway knows event ${eventId}`, async () => {
    const reply = await call('POST', `/queue/v1/events/${eventId}/join`, { token });
    if (reply.status === 200) return reply.body;
    check(reply.status === 404 || reply.status === 429, `join: ${reply.status} ${JSON.stringify(reply.body)}`);
    return null;
  });
}

/** Waits for an admission and returns the gate token. */
export async function admitted(token, eventId, ms = 30_000) {
  return until(
    'admitted',
    async () => {
      const reply = await call('GET', `/queue/v1/events/${eventId}/status`, { token });
      return reply.status === 200 && reply.body.gate_token ? reply.body.gate_token : null;
    },
    ms,
    400,
  );
}

// --- The browser -------------------------------------------------------------------------

/** Profiles to remove however the script ends. */
const profiles = new Set();
process.on('exit', () => {
  for (const profile of profiles) rmSync(profile, { recursive: true, force: true });
});

/**
 * Runs `fn({context, page})` in Debian's Chromium with a fresh profile, then closes it and
 * removes the profile. Fails if a page threw or logged an error (a CSP violation is one) or
 * fetched anything from another origin.
 */
export async function withBrowser(fn, { viewport = DESKTOP } = {}) {
  const profile = mkdtempSync(pathJoin(tmpdir(), 'flash-e2e-'));
  profiles.add(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    locale: 'en-US',
    timezoneId: 'UTC',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // A step that is not done in 15 s has failed (the scripts give longer waits explicitly).
  context.setDefaultTimeout(15_000);
  const problems = [];
  const origin = new URL(BASE);
  const watch = (page) => {
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const text = message.text();
      // Answers the UI handles (a 404 while the gateway learns of an event, say) are logged
      // by Chromium as failed loads; they are not script errors.
      if (/Failed to load resource: the server responded with a status of (4\d\d)/.test(text)) return;
      problems.push(`console error: ${text}`);
    });
    page.on('request', (request) => {
      const url = new URL(request.url());
      const sameOrigin = url.host === origin.host && ['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol);
      if (!sameOrigin && !['data:', 'blob:', 'about:'].includes(url.protocol)) {
        problems.push(`fetched from elsewhere: ${request.url()}`);
      }
    });
  };
  context.on('page', watch);
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page);
  try {
    const result = await fn({ context, page });
    check(problems.length === 0, `the pages were not clean:\n  ${problems.join('\n  ')}`);
    return result;
  } catch (error) {
    if (problems.length) error.message += `\nwhat the pages reported:\n  ${problems.join('\n  ')}`;
    try {
      await screenshot(context.pages()[0] ?? page, `failure-${basename(process.argv[1] ?? 'script', '.mjs')}`);
    } catch {
      // The page may be gone.
    }
    throw error;
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    profiles.delete(profile);
  }
}

/** Saves a screenshot as `<ARTIFACTS>/<name>.png`. */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = pathJoin(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  log('screenshot', path);
}

const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core (WCAG 2.1 A and AA rules) on the page and fails on any serious or critical
 * violation: labels, names, contrast, landmarks, ARIA.
 */
export async function accessible(page, what) {
  // Evaluated through the DevTools protocol, so the page's CSP stays in force for its own code.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const run = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return run.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
  });
  check(result.length === 0, `${what}: accessibility violations:\n  ${result.join('\n  ')}`);
  log('accessible:', what);
}

/** Signs a new buyer up through the sign-up page (keyboard only) and returns the e-mail. */
export async function signUpInBrowser(page, tag, next = '/') {
  const email = `${tag}-${unique()}@flash.test`;
  await page.goto(`${BASE}/#/signup?next=${encodeURIComponent(next)}`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill('a long buyer password');
  await page.getByLabel('Password').press('Enter');
  await page.waitForFunction(() => !window.location.hash.startsWith('#/signup'));
  return email;
}

/** Runs `main`, printing `RESULT <json>` of what it returns; exits non-zero on failure. */
export async function run(main, limitMs = 150_000) {
  const timer = setTimeout(() => {
    console.error(`timed out after ${limitMs} ms`);
    process.exit(2);
  }, limitMs);
  try {
    const result = await main();
    console.log(`RESULT ${JSON.stringify(result ?? {})}`);
    clearTimeout(timer);
    process.exit(0);
  } catch (error) {
    console.error(error?.stack ?? String(error));
    clearTimeout(timer);
    process.exit(1);
  }
}
