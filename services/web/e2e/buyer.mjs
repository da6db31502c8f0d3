// A buyer signs up and joins a line with four people ahead while admissions are on hold (no
// made-up estimate), watches the place move live once they resume, is admitted, buys two
// tickets within the admission window, and follows the order until it is paid.

import {
  ADMIN, BASE, PHONE, accessible, buyer, call, check, createEvent, expectCall, join, log, login, run, screenshot, signUpInBrowser, until, withBrowser,
} from './lib.mjs';

run(async () => {
  const admin = await login(ADMIN.email, ADMIN.password);
  const event = await createEvent(admin, {
    name: `Buyer journey ${Date.now()}`,
    inventory: 20,
    maxPerUser: 2,
    // One admission a second: the people ahead go one by one, and the page shows each step.
    queue: { admit_per_sec: 1, max_active: 100, admission_ttl_s: 120 },
  });
  log('event', event.id);

  // Admissions are on hold while four people get in line ahead of the buyer.
  const queue = `/queue/v1/admin/events/${event.id}`;
  await until('the gateway knows the event', async () => (await call('PATCH', queue, { token: admin, body: { paused: true } })).status === 200);
  const crowd = await Promise.all([1, 2, 3, 4].map((i) => buyer(`ahead${i}`)));
  for (const person of crowd) await join(person.token, event.id);

  return withBrowser(async ({ page }) => {
    await page.goto(`${BASE}/#/`);
    await page.getByRole('heading', { name: 'Tickets on sale' }).waitFor();
    await page.getByRole('link', { name: event.name }).waitFor();
    await accessible(page, 'events');
    await screenshot(page, 'buyer-events');

    const email = await signUpInBrowser(page, 'buyer', `/events/${event.id}`);
    log('signed up', email);
    await page.getByRole('heading', { name: event.name, level: 1 }).waitFor();
    await accessible(page, 'event page');
    await screenshot(page, 'buyer-event-page');
    // Keyboard: focus the button and press Enter.
    await page.getByRole('button', { name: 'Join the line' }).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/#\/events\/.+\/queue$/);
    await page.getByRole('heading', { name: 'Waiting room' }).waitFor();

    // The place moves: several different counts of people ahead, live over the WebSocket.
    const seen = new Set();
    const ahead = page.locator('#ahead');
    await ahead.waitFor();
    await until('the live badge', async () => (await page.locator('#transport').textContent()) === 'Live', 15_000);
    await accessible(page, 'waiting room');
    await screenshot(page, 'buyer-waiting-room');
    await page.setViewportSize(PHONE);
    await screenshot(page, 'buyer-waiting-room-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
    check((await ahead.textContent()) === '4', `four people ahead: ${await ahead.textContent()}`);
    // On hold, the page says it cannot estimate rather than inventing a number.
    const held = await page.locator('#eta').textContent();
    check(held?.startsWith('No estimate right now'), `no made-up estimate while admissions are on hold: ${held}`);

    // Admissions resume: the line moves one person a second.
    await expectCall(200, 'PATCH', queue, { token: admin, body: { paused: false } });
    const etas = new Set();
    await until(
      'admitted after the line moved',
      async () => {
        if (await ahead.isVisible().catch(() => false)) {
          // Short timeouts: the panel turns into checkout at any moment.
          const text = (await ahead.textContent({ timeout: 100 }).catch(() => null))?.trim();
          if (text && text !== '—') seen.add(text);
          const eta = (await page.locator('#eta').textContent({ timeout: 100 }).catch(() => null))?.trim();
          if (eta) etas.add(eta);
        }
        return page.getByRole('heading', { name: /your turn/i }).isVisible();
      },
      60_000,
      100,
    );
    log('people ahead, as seen:', [...seen].join(' → '));
    log('estimates, as seen:', [...etas].join(' | '));
    check([...etas].some((e) => e.startsWith('Estimated wait: less than a minute')), `an estimate once moving: ${[...etas].join(' | ')}`);
    check(seen.size >= 2, `the count of people ahead changed live (saw ${[...seen].join(', ')})`);
    check([...seen].some((n) => Number(n) >= 2), `started behind several people (saw ${[...seen].join(', ')})`);
    const title = await page.title();
    check(title.startsWith('Your turn!'), `the tab says it is the buyer's turn: ${title}`);

    // Checkout with the admission window counting down.
    const timer = page.getByRole('timer');
    const first = await timer.textContent();
    check(/^\d+:\d\d$/.test(first ?? ''), `a countdown: ${first}`);
    await page.getByLabel('Number of tickets').selectOption('2');
    await page.getByRole('button', { name: /^Buy 2 tickets for/ }).waitFor();
    await accessible(page, 'checkout');
    await screenshot(page, 'buyer-checkout');
    const later = await timer.textContent();
    check(later !== null, 'the countdown is still shown');
    await page.getByRole('button', { name: /^Buy 2 tickets for/ }).click();

    // The order page follows the payment to paid.
    await page.waitForURL(/#\/orders\/[0-9a-f-]+$/);
    const orderId = page.url().split('/').pop();
    await page.getByRole('heading', { name: /Paid — your tickets are yours/ }).waitFor({ timeout: 30_000 });
    await accessible(page, 'order page');
    await screenshot(page, 'buyer-order-paid');

    // And it is listed under My orders.
    await page.getByRole('link', { name: 'My orders', exact: true }).click();
    await page.getByRole('heading', { name: 'My orders' }).waitFor();
    await page.getByRole('cell', { name: event.name }).waitFor();
    check((await page.getByText('Paid', { exact: true }).count()) >= 1, 'the order is listed as paid');
    await accessible(page, 'my orders');

    // Back on the event page, the used turn is not offered as a place in line.
    await page.goto(`${BASE}/#/events/${event.id}`);
    await page.getByText('You bought tickets on your last turn').waitFor();
    await page.getByRole('button', { name: 'Queue again' }).waitFor();
    return { event_id: event.id, order_id: orderId, email, seen: [...seen] };
  });
});
