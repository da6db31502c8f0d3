// A buyer waits behind someone who is buying; that purchase takes the last tickets, and once its
// payment is approved (nothing can come back) the waiting buyer is told at once that the event
// sold out (the WebSocket's `closed` frame).

import {
  ADMIN, BASE, accessible, admitted, buyer, check, createEvent, expectCall, join, log, login, run, screenshot, signUpInBrowser, until, withBrowser,
} from './lib.mjs';

run(async () => {
  const admin = await login(ADMIN.email, ADMIN.password);
  const event = await createEvent(admin, {
    name: `Sell-out ${Date.now()}`,
    inventory: 2,
    maxPerUser: 2,
    // One buyer at a time: whoever is second waits while the first one buys.
    queue: { admit_per_sec: 5, max_active: 1, admission_ttl_s: 120 },
  });
  log('event', event.id);
  const first = await buyer('first');
  await join(first.token, event.id);
  const gate = await admitted(first.token, event.id);

  return withBrowser(async ({ page }) => {
    await signUpInBrowser(page, 'second', `/events/${event.id}`);
    await page.getByRole('button', { name: 'Join the line' }).click();
    await page.getByRole('heading', { name: 'Waiting room' }).waitFor();
    await page.locator('#ahead').waitFor();
    await until('the live badge', async () => (await page.locator('#transport').textContent()) === 'Live', 15_000);
    const words = await page.locator('#ahead-words').textContent();
    check(words === 'You are next in line.', `waiting right behind the buyer: ${words}`);

    // The first buyer takes the last two tickets.
    const order = await expectCall(201, 'POST', `/api/v1/events/${event.id}/orders`, {
      token: first.token,
      body: { quantity: 2 },
      headers: { 'Gate-Token': gate, 'Idempotency-Key': 'sell-out' },
    });
    const soldAt = Date.now();
    log('order', order.id, 'took the last tickets');

    await page.getByRole('heading', { name: 'Sold out' }).waitFor({ timeout: 10_000 });
    const tookMs = Date.now() - soldAt;
    log(`told of the sell-out after ${tookMs} ms`);
    check(tookMs < 5_000, `told at once (took ${tookMs} ms)`);
    check((await page.title()).startsWith('Sold out'), 'the tab title says sold out');
    check((await page.getByRole('button', { name: 'Leave the line' }).count()) === 0, 'nothing left to leave');
    await accessible(page, 'sold out');
    await screenshot(page, 'sold-out-waiting-buyer');
    await page.emulateMedia({ colorScheme: 'dark' });
    await accessible(page, 'sold out, dark scheme');
    await screenshot(page, 'sold-out-waiting-buyer-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    // The event page says so too, with no way to join.
    await page.goto(`${BASE}/#/events/${event.id}`);
    await page.getByRole('heading', { name: 'Sold out', level: 2 }).waitFor();
    check((await page.getByRole('button', { name: /Join the line/ }).count()) === 0, 'no join button on a sold-out event');
    return { event_id: event.id, told_after_ms: tookMs };
  });
});
