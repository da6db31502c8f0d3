// The browser's check of the draw (public/js/fairness.js) against Node's own SHA-256 and the
// rule's published test vector (the protocol crate's `draw` tests).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { checkPlace, pseudonym, ALGORITHM } from '../../public/js/fairness.js';

const sha = (bytes) => createHash('sha256').update(bytes).digest();
const EVENT = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';

/** A revealed draw of the given users: its record and file, sorted by the rule. */
function draw(users, seed = Buffer.alloc(32, 42)) {
  const drawn = users
    .map((user) => {
      const name = sha(Buffer.from(`${EVENT}:${user}`)).toString('hex');
      return { user, name, key: sha(Buffer.concat([seed, Buffer.from(name)])) };
    })
    .sort((a, b) => Buffer.compare(a.key, b.key));
  const file = Buffer.from(drawn.map((d) => `${d.name}\n`).join(''));
  const fairness = {
    event_id: EVENT,
    algorithm: ALGORITHM,
    commitment: sha(seed).toString('hex'),
    seed: seed.toString('hex'),
    participants_count: drawn.length,
    participants_sha256: sha(file).toString('hex'),
  };
  return { fairness, file, order: drawn.map((d) => d.user) };
}

test('the pseudonym follows the published rule', async () => {
  assert.equal(
    await pseudonym(EVENT, '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c'),
    'f81a8046788728fd1a006ff13b75684d34e631210f1edc7920a96da3f1afce6f',
  );
});

test('every participant finds their line, their number and their neighbours in order', async () => {
  const users = Array.from({ length: 30 }, () => randomUUID());
  const { fairness, file, order } = draw(users);
  for (const [i, userId] of order.entries()) {
    const result = await checkPlace({ fairness, file, eventId: EVENT, userId, number: i + 1 });
    assert.deepEqual(result, { ok: true, line: i + 1, count: 30, problems: [] });
  }
  const late = await checkPlace({ fairness, file, eventId: EVENT, userId: randomUUID(), number: 31 });
  assert.equal(late.line, null, 'someone who came after the opening is not in the draw');
});

test('a wrong number, a swapped list, another seed or an edited file are all found', async () => {
  const { fairness, file, order } = draw(Array.from({ length: 10 }, () => randomUUID()));
  const wrong = await checkPlace({ fairness, file, eventId: EVENT, userId: order[3], number: 9 });
  assert.equal(wrong.ok, false);
  assert.match(wrong.problems.join(), /your number is 9, but the draw puts you at 4/);

  const lines = file.toString().split('\n').slice(0, -1);
  [lines[3], lines[4]] = [lines[4], lines[3]];
  const swapped = Buffer.from(lines.map((l) => `${l}\n`).join(''));
  const rehashed = { ...fairness, participants_sha256: sha(swapped).toString('hex') };
  const moved = await checkPlace({ fairness: rehashed, file: swapped, eventId: EVENT, userId: order[3], number: 5 });
  assert.equal(moved.ok, false);
  assert.match(moved.problems.join(), /should come/);

  const otherSeed = { ...fairness, seed: Buffer.alloc(32, 1).toString('hex') };
  const reseeded = await checkPlace({ fairness: otherSeed, file, eventId: EVENT, userId: order[0], number: 1 });
  assert.match(reseeded.problems.join(), /not the one committed/);

  const edited = Buffer.from(file);
  edited[0] = edited[0] === 0x61 ? 0x62 : 0x61;
  const tampered = await checkPlace({ fairness, file: edited, eventId: EVENT, userId: order[5], number: 6 });
  assert.match(tampered.problems.join(), /not the published one/);
});
