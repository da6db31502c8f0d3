// The browser's solver for join challenges (public/js/pow.js) against Node's own SHA-256.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sha256Hex, solve } from '../../public/js/pow.js';

const nodeSha = (text) => createHash('sha256').update(text, 'ascii').digest('hex');
const zeroBits = (hex) => {
  const bits = BigInt(`0x${hex}`).toString(2).padStart(256, '0');
  return bits.length - bits.replace(/^0+/, '').length;
};

test('SHA-256 matches Node for every length around the block boundaries', () => {
  for (let length = 0; length < 200; length += 1) {
    const text = 'x'.repeat(length);
    assert.equal(sha256Hex(text), nodeSha(text), `length ${length}`);
  }
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('a solution found is one the gateway accepts, at every difficulty and challenge length', () => {
  for (const length of [1, 40, 54, 55, 56, 63, 64, 100, 190, 512]) {
    const challenge = 'c'.repeat(length);
    for (const difficulty of [0, 1, 5, 12]) {
      const { nonce, tried } = solve(challenge, difficulty);
      assert.match(nonce, /^(0|[1-9][0-9]{0,19})$/);
      assert.ok(tried >= 1);
      assert.ok(zeroBits(nodeSha(`${challenge}:${nonce}`)) >= difficulty, `${length}/${difficulty}: ${nonce}`);
      // The first one: every nonce before it falls short.
      for (let earlier = 0; earlier < Number(nonce); earlier += 1) {
        assert.ok(zeroBits(nodeSha(`${challenge}:${earlier}`)) < difficulty);
      }
    }
  }
  // The contract's example: sha256("abc:3") starts with 0x0f (4 zero bits).
  assert.deepEqual(solve('abc', 4), { nonce: '3', tried: 4 });
});

test('a long search can be stopped', () => {
  assert.equal(solve('stop me', 64, { shouldStop: () => true }), null);
});
