// Money, waits and countdowns as buyers read them (public/js/format.js).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countdown, minorDigits, parseMoney, spokenDuration, wait, waitRange } from '../../public/js/format.js';

test('waits are rounded and never falsely precise', () => {
  assert.equal(wait(5), 'less than a minute');
  assert.equal(wait(59), 'less than a minute');
  assert.equal(wait(61), 'about 1 minute');
  assert.equal(wait(9 * 60 + 20), 'about 9 minutes');
  assert.equal(wait(2 * 3600), 'about 2 hours');
  assert.equal(wait(3600 + 25 * 60), 'about 1 hour 25 minutes');
});

test('uncertain waits are ranges', () => {
  assert.equal(waitRange(4 * 60, 9 * 60), '4 to 9 minutes');
  assert.equal(waitRange(30, 50), '1 to 2 minutes');
});

test('countdowns', () => {
  assert.equal(countdown(299.6), '4:59');
  assert.equal(countdown(0), '0:00');
  assert.equal(countdown(-3), '0:00');
  assert.equal(countdown(3725), '1:02:05');
  assert.equal(spokenDuration(125), '2 minutes 5 seconds');
  assert.equal(spokenDuration(60), '1 minute');
});

test('prices typed by operators become minor units', () => {
  assert.equal(minorDigits('EUR'), 2);
  assert.equal(minorDigits('JPY'), 0);
  assert.equal(parseMoney('45', 'EUR'), 4500);
  assert.equal(parseMoney('30.5', 'EUR'), 3050);
  assert.equal(parseMoney('30,55', 'EUR'), 3055);
  assert.equal(parseMoney('1200', 'JPY'), 1200);
  assert.equal(parseMoney('12.5', 'JPY'), null);
  assert.equal(parseMoney('4.555', 'EUR'), null);
  assert.equal(parseMoney('-3', 'EUR'), null);
  assert.equal(parseMoney('abc', 'EUR'), null);
});
