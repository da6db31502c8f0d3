// Checking the draw in the browser (docs/contract.md, "The draw", sha256-commit-reveal-v1):
// the revealed seed hashes to the commitment published before the sale, the participants file
// hashes to its published hash, the buyer's own line is their number, and their key sorts
// between their neighbours'. A whole draw is checked by `flash-drill verify-draw`.

export const ALGORITHM = 'sha256-commit-reveal-v1';
const LINE = 65; // 64 hex characters and a newline

const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');

const fromHex = (text) => Uint8Array.from(text.match(/../g) ?? [], (pair) => parseInt(pair, 16));

const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));

const ascii = (text) => new TextEncoder().encode(text);

/** A buyer's pseudonym: lowercase hex SHA-256 of `event_id:user_id`. */
export async function pseudonym(eventId, userId) {
  return hex(await sha256(ascii(`${eventId}:${userId}`)));
}

/** A participant's key in the draw: SHA-256 of the seed bytes followed by the pseudonym. */
async function key(seed, name) {
  const bytes = new Uint8Array(seed.length + name.length);
  bytes.set(seed);
  bytes.set(ascii(name), seed.length);
  return sha256(bytes);
}

const before = (a, b) => {
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
};

/**
 * Checks the buyer's place: `fairness` is the event's record, `file` the participants file's
 * bytes, `number` the number the queue gave them. Resolves to `{ ok, line, count, problems }`;
 * `line` is null when the buyer is not in the file (they joined after the opening).
 */
export async function checkPlace({ fairness, file, eventId, userId, number }) {
  const problems = [];
  const bytes = new Uint8Array(file);
  const count = fairness.participants_count ?? 0;
  if (fairness.algorithm !== ALGORITHM) problems.push(`the draw uses ${fairness.algorithm}, which this page cannot check`);
  if (!fairness.seed || !fairness.commitment) return { ok: false, line: null, count, problems: ['the draw is not revealed yet'] };
  const seed = fromHex(fairness.seed);
  if (seed.length !== 32 || hex(await sha256(seed)) !== fairness.commitment) {
    problems.push('the revealed seed is not the one committed to before the sale');
  }
  if (hex(await sha256(bytes)) !== fairness.participants_sha256) {
    problems.push('the list of participants is not the published one');
  }
  if (bytes.length !== count * LINE) problems.push(`the list has ${bytes.length / LINE} lines, not ${count}`);
  const mine = await pseudonym(eventId, userId);
  const text = new TextDecoder().decode(bytes);
  let at = text.indexOf(`${mine}\n`);
  while (at >= 0 && at % LINE !== 0) at = text.indexOf(`${mine}\n`, at + 1);
  if (at < 0) return { ok: problems.length === 0, line: null, count, problems };
  const index = at / LINE;
  const line = index + 1;
  if (number != null && number !== line) problems.push(`your number is ${number}, but the draw puts you at ${line}`);
  const own = await key(seed, mine);
  if (index > 0 && !before(await key(seed, text.slice(at - LINE, at - 1)), own)) {
    problems.push('the person just before you in the list should come after you');
  }
  if (index + 1 < count && !before(own, await key(seed, text.slice(at + LINE, at + 2 * LINE - 1)))) {
    problems.push('the person just after you in the list should come before you');
  }
  return { ok: problems.length === 0, line, count, problems };
}
