// A buyer's place survives reloads; when WebSockets keep failing, the page says so, falls back
// to polling the status, and still takes the buyer to checkout when the turn comes.

import {
  ADMIN, BASE, accessible, buyer, call, check, createEvent, expectCall, join, log, login, run, screenshot, signUpInBrowser, until, withBrowser,
} from './lib.mjs';

run(async () => {
  const admin = await login(ADMIN.email, ADMIN.password);
  const event = await createEvent(admin, {
    name: `Reconnect ${Date.now()}`,
    inventory: 10,
    maxPerUser: 1,
    queue: { admit_per_sec: 2, max_active: 50, admission_ttl_s: 120 },
  });
  log('event', event.id);
  const queue = `/queue/v1/admin/events/${event.id}`;
  await until('the gateway knows the event', async () => (await call('PATCH', queue, { token: admin, body: { paused: true } })).status === 200);
  for (const person of await Promise.all([1, 2].map((i) => buyer(`ahead${i}`)))) await join(person.token, event.id);

  return withBrowser(async ({ page }) => {
    await signUpInBrowser(page, 'steady', `/events/${event.id}`);
    await page.getByRole('button', { name: 'Join the line' }).click();
    await page.getByRole('heading', { name: 'Waiting room' }).waitFor();
    const ahead = page.locator('#ahead');
    await until('two ahead', async () => (await ahead.textContent()) === '2', 10_000);
    const number = await page.locator('#number').textContent();
    check(/^Your number: \d+$/.test(number ?? ''), `a number: ${number}`);

    // A reload keeps the place: same number, same people ahead.
    await page.reload();
    await page.getByRole('heading', { name: 'Waiting room' }).waitFor();
    await until('the place after a reload', async () => (await ahead.textContent()) === '2', 10_000);
    check((await page.locator('#number').textContent()) === number, 'the same number after a reload');

    // From now on every WebSocket is closed by the network at once.
    await page.routeWebSocket(/\/queue\/v1\/events\/[^/]+\/ws$/, (ws) => ws.close({ code: 1011, reason: 'test: no WebSockets here' }));
    await page.reload();
    await page.getByRole('heading', { name: 'Waiting room' }).waitFor();
    const transport = page.locator('#transport');
    await until('polling instead', async () => (await transport.textContent())?.startsWith('Live updates unavailable'), 20_000);
    check((await ahead.textContent()) === '2', 'the place is still shown while polling');
    check((await page.locator('#number').textContent()) === number, 'the same number while polling');
    const eta = await page.locator('#eta').textContent();
    check(eta?.includes('Updates may lag'), `the estimate says updates may lag: ${eta}`);
    await accessible(page, 'waiting room while polling');
    await screenshot(page, 'buyer-polling-fallback');

    // Admissions resume: polling alone brings the buyer to checkout.
    await expectCall(200, 'PATCH', queue, { token: admin, body: { paused: false } });
    await page.getByRole('heading', { name: /your turn/i }).waitFor({ timeout: 20_000 });
    check((await page.getByLabel('Number of tickets').locator('option').count()) === 1, 'one ticket per buyer offered');
    await page.goto(`${BASE}/#/`);
    return { event_id: event.id };
  });
});
