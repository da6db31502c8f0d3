// What the waiting room says about the wait (public/js/progress.js).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineProgress, assessWait } from '../../public/js/progress.js';

const T0 = 1_000_000;

test('no one ahead: next', () => {
  assert.deepEqual(assessWait({ ahead: 0, eta_s: 1 }, new LineProgress('e', T0), T0), { kind: 'next' });
});

test('no estimate from the gateway: none, never a made-up number', () => {
  assert.deepEqual(assessWait({ ahead: 5, eta_s: null }, new LineProgress('e', T0), T0), { kind: 'none' });
});

test('without history the gateway estimate stands', () => {
  const progress = new LineProgress('e', T0);
  progress.record(40, T0);
  assert.deepEqual(assessWait({ ahead: 40, eta_s: 41 }, progress, T0 + 5_000), { kind: 'estimate', seconds: 41 });
});

test('a line moving as planned keeps the estimate', () => {
  const progress = new LineProgress('e', T0);
  for (let s = 0; s <= 20; s += 1) progress.record(60 - s, T0 + s * 1000);
  const now = T0 + 20_000;
  assert.deepEqual(assessWait({ ahead: 40, eta_s: 41 }, progress, now), { kind: 'estimate', seconds: 41 });
});

test('a line moving much slower than planned gives a range', () => {
  const progress = new LineProgress('e', T0);
  // Planned: one a second. Seen: one every four seconds.
  for (let s = 0; s <= 40; s += 4) progress.record(100 - s / 4, T0 + s * 1000);
  const now = T0 + 40_000;
  const said = assessWait({ ahead: 90, eta_s: 91 }, progress, now);
  assert.equal(said.kind, 'range');
  assert.equal(said.low, 91);
  assert.ok(said.high > 300 && said.high < 420, `high ${said.high}`);
});

test('a line that stopped moving is called stalled', () => {
  const progress = new LineProgress('e', T0);
  progress.record(10, T0);
  progress.record(9, T0 + 1_000);
  for (let s = 2; s <= 31; s += 1) progress.record(9, T0 + s * 1000);
  const said = assessWait({ ahead: 9, eta_s: 10 }, progress, T0 + 31_000);
  assert.deepEqual(said, { kind: 'stalled', stillS: 30 });
});

test('progress counts from the longest line seen', () => {
  const progress = new LineProgress('e', T0);
  progress.record(20, T0);
  assert.equal(progress.fraction(20), 0);
  progress.record(5, T0 + 1000);
  assert.equal(progress.fraction(5), 0.75);
  assert.equal(progress.fraction(0), 1);
  progress.reset();
  assert.equal(progress.start, null);
});

test('no ticket left while orders are being paid: reserved, whatever else the line says', () => {
  const progress = new LineProgress('e', T0);
  assert.deepEqual(assessWait({ ahead: 3, eta_s: null, reserved_pending: 4 }, progress, T0), { kind: 'reserved', pending: 4 });
  assert.deepEqual(assessWait({ ahead: 0, eta_s: null, reserved_pending: 1 }, progress, T0), { kind: 'reserved', pending: 1 });
  assert.deepEqual(assessWait({ ahead: 0, eta_s: 0, reserved_pending: 0 }, progress, T0), { kind: 'next' });
});
