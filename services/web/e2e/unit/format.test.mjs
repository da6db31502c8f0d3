// Money, waits and countdowns as buyers read them (public/js/format.js).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REFUND_STATUS, countdown, dateTime, minorDigits, parseMoney, refundWords, spokenDuration, wait, waitRange } from '../../public/js/format.js';

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

test('a refund says why, and where the money is', () => {
  const order = { id: '0190b3a8-6c1e-7d2a-9f00-00000000b001', status: 'expired' };
  const at = '2026-12-01T10:10:07Z';
  const why = 'Your payment arrived after your hold ended, so no ticket was issued.';
  assert.equal(refundWords(order), null);
  assert.equal(refundWords({ ...order, refund: null }), null);
  assert.deepEqual(refundWords({ ...order, refund: { status: 'pending', at } }), {
    tone: 'warn',
    why,
    state: `Refund in progress (asked ${dateTime(at)}).`,
  });
  assert.deepEqual(refundWords({ ...order, refund: { status: 'refunded', at } }), {
    tone: 'warn',
    why,
    state: `Refunded on ${dateTime(at)}: the payment was given back.`,
  });
  assert.deepEqual(refundWords({ ...order, refund: { status: 'failed', at } }), {
    tone: 'bad',
    why,
    state: `The refund could not be made automatically — contact support with order ${order.id}.`,
  });
  assert.equal(refundWords({ ...order, refund: { status: 'reversed', at } }).state, `Refund: reversed (${dateTime(at)}).`);
  assert.deepEqual(Object.keys(REFUND_STATUS), ['pending', 'refunded', 'failed']);
});
