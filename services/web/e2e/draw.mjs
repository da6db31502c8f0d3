// The draw, seen by a buyer: before the opening the waiting room says how places will be drawn
// and shows the commitment; after it the buyer checks their own place in the browser ("Your
// place was drawn fairly — verify") against the published seed and participants.

import {
  ADMIN, BASE, PHONE, accessible, buyer, call, check, createEvent, join, log, login, run, screenshot, signUpInBrowser, until, withBrowser,
} from './lib.mjs';

const OPENS_IN_MS = 25_000;

run(async () => {
  const admin = await login(ADMIN.email, ADMIN.password);
  const opensAt = Date.now() + OPENS_IN_MS;
  const event = await createEvent(admin, {
    name: `Drawn fairly ${Date.now()}`,
    inventory: 50,
    maxPerUser: 2,
    // Slow admissions: the buyer is still in line, or just admitted, when checking.
    queue: { admit_per_sec: 1, max_active: 2, admission_ttl_s: 120 },
    opensInMs: OPENS_IN_MS,
  });
  log('event', event.id);
  // Others in the pre-queue, so that the buyer has neighbours.
  for (let i = 0; i < 6; i += 1) {
    const other = await buyer(`early-${i}`);
    const ticket = await join(other.token, event.id);
    check(ticket.state === 'pre_queue' && /^[0-9a-f]{64}$/.test(ticket.pseudonym ?? ''), `a pre-queue ticket carries its pseudonym: ${JSON.stringify(ticket)}`);
  }

  return withBrowser(async ({ page }) => {
    page.on('pageerror', (error) => log('page error', error.message));
    await signUpInBrowser(page, 'drawn', `/events/${event.id}`);
    await page.getByRole('button', { name: 'Join the line before the sale' }).click();
    await page.getByRole('heading', { name: 'Waiting room' }).waitFor();
    await page.getByRole('heading', { name: 'How the places are drawn' }).waitFor();
    const fairness = (await call('GET', `/queue/v1/events/${event.id}/fairness`)).body;
    check(fairness.commitment && fairness.seed === null, `sealed before the opening: ${JSON.stringify(fairness)}`);
    check(
      (await page.locator('#fairness code').getAttribute('title')) === fairness.commitment,
      'the page shows the published commitment',
    );
    await accessible(page, 'the draw before the opening');
    check(Date.now() < opensAt, 'the buyer joined before the opening');

    await page.getByRole('heading', { name: 'Your place was drawn fairly — verify' }).waitFor({ timeout: OPENS_IN_MS + 30_000 });
    await page.getByRole('button', { name: 'Verify my place' }).click();
    const result = page.locator('#fairness-result');
    await until('the check is done', async () => !(await result.innerText()).includes('Checking'), 30_000);
    const text = await result.innerText();
    log('check:', text);
    check(text.startsWith('Checked in this browser'), `the check passed: ${text}`);
    await screenshot(page, 'draw-verified-phone');
    await accessible(page, 'the draw checked');
    const line = Number(/line (\d+)/.exec(text)?.[1]);
    const number = Number(/your number (\d+)/.exec(text)?.[1]);
    const revealed = (await call('GET', `/queue/v1/events/${event.id}/fairness`)).body;
    return { event_id: event.id, line, number, participants: revealed.participants_count, base: BASE };
  }, { viewport: PHONE });
}, 150_000);
