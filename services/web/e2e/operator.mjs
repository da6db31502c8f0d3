// An operator logs in, creates an event with its queue settings, watches the live console,
// pauses the queue (the gateway says paused), changes the admission rate, and resumes.

import { ADMIN, BASE, PHONE, accessible, check, expectCall, log, login, run, screenshot, until, withBrowser } from './lib.mjs';

run(async () => {
  const name = `Operator night ${Date.now()}`;
  return withBrowser(async ({ page }) => {
    await page.goto(`${BASE}/#/login`);
    await page.getByLabel('E-mail', { exact: true }).fill(ADMIN.email);
    await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('link', { name: 'Console' }).click();
    await page.getByRole('heading', { name: 'Console', level: 1 }).waitFor();
    await accessible(page, 'console index');
    await page.getByRole('link', { name: 'Create an event' }).click();
    await page.getByRole('heading', { name: 'Create an event' }).waitFor();

    // A mistake first: the form says what is wrong, field by field.
    await page.getByRole('button', { name: 'Create event' }).click();
    await page.getByRole('alert').getByText('Please check the form').waitFor();
    check((await page.getByLabel('Name', { exact: true }).getAttribute('aria-invalid')) === 'true', 'the name is marked invalid');

    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByLabel('Venue', { exact: true }).fill('Console Hall');
    await page.getByLabel('Price per ticket', { exact: true }).fill('30.50');
    await page.getByLabel('Tickets for sale', { exact: true }).fill('250');
    await page.getByLabel('Tickets per buyer, at most', { exact: true }).fill('3');
    await page.getByLabel('Admissions per second', { exact: true }).fill('20');
    await page.getByLabel('Buying at once, at most', { exact: true }).fill('40');
    await page.getByLabel('Time to buy (seconds)', { exact: true }).fill('180');
    await page.getByLabel('Bot check difficulty (0 = off)', { exact: true }).fill('12');
    // Returns reach the line for a day (the form's time is the browser's local time).
    const returnsUntil = new Date(Date.now() + 24 * 3600 * 1000);
    returnsUntil.setSeconds(0, 0);
    const pad = (n) => String(n).padStart(2, '0');
    await page.getByLabel('Returns reach the line until (optional)', { exact: true }).fill(
      `${returnsUntil.getFullYear()}-${pad(returnsUntil.getMonth() + 1)}-${pad(returnsUntil.getDate())}T${pad(returnsUntil.getHours())}:${pad(returnsUntil.getMinutes())}`,
    );
    await accessible(page, 'create form');
    await page.getByRole('button', { name: 'Create event' }).click();

    await page.waitForURL(/#\/admin\/events\/[0-9a-f-]+$/);
    const eventId = page.url().split('/').pop();
    log('created', eventId);
    await page.getByRole('heading', { name, level: 1 }).waitFor();
    const created = await expectCall(200, 'GET', `/api/v1/events/${eventId}`);
    check(Date.parse(created.returns_until) === returnsUntil.getTime(), `returns_until saved: ${created.returns_until}`);
    const state = page.locator('#q-state');
    await until('the queue admitting', async () => (await state.textContent()) === 'Admitting', 20_000);
    check((await page.locator('#q-stock').textContent())?.startsWith('250'), 'stock shown');
    check((await page.locator('#o-paid').textContent()) === '0', 'no paid orders yet');
    check((await page.getByLabel('Admissions per second', { exact: true }).inputValue()) === '20', 'the rate is filled in');

    // Pause.
    await page.getByRole('button', { name: 'Pause admissions' }).click();
    await until('paused in the console', async () => (await state.textContent()) === 'Paused', 10_000);
    await page.getByRole('button', { name: 'Resume admissions' }).waitFor();
    const admin = await login(ADMIN.email, ADMIN.password);
    const stats = await expectCall(200, 'GET', `/queue/v1/admin/events/${eventId}`, { token: admin });
    check(stats.state === 'paused', `the gateway says paused: ${JSON.stringify(stats)}`);

    // A new rate: saved on the event and live in the queue.
    await page.getByLabel('Admissions per second', { exact: true }).fill('7');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.getByText('Saved: 7 per second').waitFor();
    const after = await expectCall(200, 'GET', `/queue/v1/admin/events/${eventId}`, { token: admin });
    check(after.admit_per_sec === 7 && after.max_active === 40, `the queue runs at the new rate: ${JSON.stringify(after)}`);
    check(after.state === 'paused', 'still paused after the rate change');

    // The bot check: as the form set it, what each setting costs shown next to it, then raised.
    const difficulty = page.getByLabel('Bot check difficulty (0 = off)');
    check((await difficulty.inputValue()) === '12', 'the bot check starts where the form set it');
    await difficulty.fill('40');
    await page.getByRole('button', { name: 'Apply bot check' }).click();
    await page.getByText('Enter a whole number from 0 to 32').first().waitFor();
    await difficulty.fill('18');
    const cost = await page.locator('#challenge-cost').textContent();
    check(/mid-range phone waits about 1\.3 s/.test(cost), `the expected wait is shown: ${cost}`);
    await page.getByRole('button', { name: 'Apply bot check' }).click();
    await page.getByText('Saved: bot check at 18.').waitFor();
    const checked = await expectCall(200, 'GET', `/queue/v1/admin/events/${eventId}`, { token: admin });
    check(checked.challenge_difficulty === 18, `the queue asks newcomers for a challenge: ${JSON.stringify(checked)}`);

    // The sale's changes, newest first: the event's creation last; the rate saved on the event
    // (api) and in the queue (gateway), the pause and the bot check (gateway, relayed).
    // The gateway's changes reach the log through RabbitMQ, each in its own time: wait for all
    // of them, then read the order. The rate is saved on the event first; the queue records it
    // too only when the console's own call to the gateway changed it, that is when it got
    // there before the api's event.updated did (either way the queue runs at 7, checked above).
    const changes = page.locator('#audit-log');
    let rows = [];
    const has = (pattern) => rows.some((row) => pattern.test(row) && row.includes(ADMIN.email));
    const expected = [
      /Created the event/,
      /Changed the event.*queue\.admit_per_sec: 20 → 7/,
      /Changed the queue.*queue\.paused: false → true/,
      /Changed the queue.*challenge_difficulty: 12 → 18/,
    ];
    await until(
      'every change in the log',
      async () => {
        rows = await changes.locator('li.record').allTextContents();
        return expected.every(has);
      },
      30_000,
    ).catch((error) => {
      throw new Error(`${error.message}; the log: ${rows.join(' | ')}`);
    });
    check(/Created the event/.test(rows.at(-1)), `the creation comes last: ${rows.join(' | ')}`);
    check(/Changed the queue.*challenge_difficulty: 12 → 18/.test(rows[0]), `the newest change first: ${rows[0]}`);
    check(has(/Changed the event.*queue\.admit_per_sec: 20 → 7/), `the rate, on the event: ${rows.join(' | ')}`);
    check(has(/Changed the queue.*queue\.paused: false → true/), `the pause: ${rows.join(' | ')}`);

    // Some history for the charts, then pictures.
    await page.waitForTimeout(2500);
    await accessible(page, 'live console');
    await screenshot(page, 'operator-console');
    await page.setViewportSize(PHONE);
    await screenshot(page, 'operator-console-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await accessible(page, 'live console, dark scheme');
    await screenshot(page, 'operator-console-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    // Resume, then pause again: the test leaves it paused for the harness to check.
    await page.getByRole('button', { name: 'Resume admissions' }).click();
    await until('admitting again', async () => (await state.textContent()) === 'Admitting', 10_000);
    await page.getByRole('button', { name: 'Pause admissions' }).click();
    await until('paused again', async () => (await state.textContent()) === 'Paused', 10_000);
    return { event_id: eventId, name };
  });
});
