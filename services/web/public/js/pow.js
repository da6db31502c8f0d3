// The join challenge's rule (docs/contract.md, "The join challenge"): find a nonce such that
// SHA-256 of the ASCII bytes of `challenge + ":" + nonce` starts with `difficulty` zero bits.
// SHA-256 is written out here because the browser's crypto.subtle.digest is asynchronous:
// one await per attempt would make solving many times slower. The challenge's full 64-byte
// blocks are hashed once; each attempt hashes only the last one or two.

const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = Int32Array.from([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const W = new Int32Array(64);

/** One SHA-256 compression of the 64 bytes at `offset` into `state` (8 words, in place). */
function compress(state, bytes, offset) {
  for (let i = 0; i < 16; i += 1) {
    const j = offset + i * 4;
    W[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let i = 16; i < 64; i += 1) {
    const x = W[i - 15];
    const y = W[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let [a, b, c, d, e, f, g, h] = state;
  for (let i = 0; i < 64; i += 1) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
  state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0;
  state[7] = (state[7] + h) | 0;
}

const ascii = (text) => Uint8Array.from(text, (ch) => ch.charCodeAt(0) & 0x7f);

/** Pads `bytes` (a message of `total` bytes whose earlier blocks are hashed) and hashes the rest. */
function finish(state, tail, total) {
  const blocks = tail.length + 9 <= 64 ? 1 : 2;
  const buffer = new Uint8Array(blocks * 64);
  buffer.set(tail);
  buffer[tail.length] = 0x80;
  const bits = total * 8;
  const end = buffer.length;
  buffer[end - 5] = Math.floor(bits / 2 ** 32) & 0xff;
  buffer[end - 4] = (bits >>> 24) & 0xff;
  buffer[end - 3] = (bits >>> 16) & 0xff;
  buffer[end - 2] = (bits >>> 8) & 0xff;
  buffer[end - 1] = bits & 0xff;
  for (let offset = 0; offset < end; offset += 64) compress(state, buffer, offset);
  return state;
}

/** Lowercase hex SHA-256 of an ASCII string (for tests and checks). */
export function sha256Hex(text) {
  const bytes = ascii(text);
  const full = bytes.length - (bytes.length % 64);
  const state = Int32Array.from(IV);
  for (let offset = 0; offset < full; offset += 64) compress(state, bytes, offset);
  finish(state, bytes.subarray(full), bytes.length);
  return Array.from(state, (word) => (word >>> 0).toString(16).padStart(8, '0')).join('');
}

/** Leading zero bits of a digest held as eight 32-bit words. */
function zeroBits(state) {
  let bits = 0;
  for (const word of state) {
    if (word !== 0) return bits + Math.clz32(word);
    bits += 32;
  }
  return bits;
}

/**
 * The first nonce (a decimal string) from `start` that solves `challenge` at `difficulty`, and
 * how many were tried; `shouldStop` is asked every 65,536 attempts.
 */
export function solve(challenge, difficulty, { start = 0, shouldStop = () => false } = {}) {
  const prefix = ascii(`${challenge}:`);
  const full = prefix.length - (prefix.length % 64);
  const midstate = Int32Array.from(IV);
  for (let offset = 0; offset < full; offset += 64) compress(midstate, prefix, offset);
  const head = prefix.subarray(full);
  const state = new Int32Array(8);
  const buffer = new Uint8Array(128);
  buffer.set(head);
  for (let nonce = start, tried = 1; ; nonce += 1, tried += 1) {
    const digits = String(nonce);
    let at = head.length;
    for (let i = 0; i < digits.length; i += 1) buffer[at++] = digits.charCodeAt(i);
    const total = prefix.length + digits.length;
    buffer[at++] = 0x80;
    const end = at + 8 <= 64 ? 64 : 128;
    buffer.fill(0, at, end);
    const bits = total * 8;
    buffer[end - 4] = (bits >>> 24) & 0xff;
    buffer[end - 3] = (bits >>> 16) & 0xff;
    buffer[end - 2] = (bits >>> 8) & 0xff;
    buffer[end - 1] = bits & 0xff;
    state.set(midstate);
    compress(state, buffer, 0);
    if (end === 128) compress(state, buffer, 64);
    if (zeroBits(state) >= difficulty) return { nonce: digits, tried };
    if ((tried & 0xffff) === 0 && shouldStop()) return null;
  }
}
