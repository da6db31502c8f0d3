// Solves a join challenge off the page's thread (a module worker): the page stays responsive.
// Message in: {challenge, difficulty}; message out: {nonce, tried, ms}.

import { solve } from './pow.js';

self.onmessage = ({ data }) => {
  const started = performance.now();
  const { nonce, tried } = solve(data.challenge, data.difficulty);
  self.postMessage({ nonce, tried, ms: performance.now() - started });
};
