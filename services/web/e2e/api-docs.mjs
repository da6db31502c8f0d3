// A client developer opens the API reference: both services' operations are listed from their
// OpenAPI documents, an operation opens to its answers and error codes, a schema link leads to
// the schema's fields with their bounds, and the page is accessible on a phone.

import { BASE, PHONE, accessible, check, expectCall, run, screenshot, withBrowser } from './lib.mjs';

run(async () => {
  const api = await expectCall(200, 'GET', '/api/openapi.json');
  const queue = await expectCall(200, 'GET', '/queue/openapi.json');
  const count = (doc) => Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  return withBrowser(async ({ page }) => {
    await page.goto(`${BASE}/api-docs.html`);
    await page.getByRole('heading', { name: 'API reference', level: 1 }).waitFor();
    await page.getByRole('heading', { name: /Flash Tickets api/, level: 2 }).waitFor();
    await page.getByRole('heading', { name: /Flash Tickets gateway/, level: 2 }).waitFor();
    const operations = await page.locator('details.api-op').count();
    check(operations === count(api) + count(queue), `every operation is listed: ${operations}`);

    const order = page.locator('#api-op-createOrder');
    await order.locator('summary').click();
    await order.getByText('SOLD_OUT', { exact: true }).first().waitFor();
    await order.getByText('Needs', { exact: false }).waitFor();
    await order.getByRole('link', { name: 'CreateOrder' }).first().click();
    const schema = page.locator('#api-schema-CreateOrder');
    await schema.locator('summary').click();
    await schema.getByText('≥ 1, ≤ 100').waitFor();

    const join = page.locator('#queue-op-joinQueue');
    await join.locator('summary').click();
    await join.getByText('QUEUE_CLOSED', { exact: true }).first().waitFor();
    await accessible(page, 'api reference');
    await page.setViewportSize(PHONE);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `nothing wider than a phone: ${overflow}px too wide`);
    await screenshot(page, 'api-docs-phone');
    return { operations };
  });
});
