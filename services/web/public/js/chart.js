// Small line charts over time, drawn as SVG (no library), each with a text alternative.

import { h } from './dom.js';
import { num } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 300;
const HEIGHT = 72;

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

/**
 * A chart of one series over the last `windowMs`: `{el, push(value, at)}`. `format` turns a
 * value into text (numbers grouped by locale by default).
 */
export function sparkline({ title, windowMs = 5 * 60_000, format = (v) => num(Math.round(v)) }) {
  const points = [];
  const current = h('strong', null, '—');
  const line = svg('polyline', { class: 'line', points: '' });
  const area = svg('polygon', { class: 'area', points: '' });
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `${title}: no data yet` });
  chart.append(area, line);
  const low = h('span', null, '');
  const high = h('span', null, '');
  const el = h(
    'figure',
    { class: 'chart' },
    h('figcaption', null, h('span', null, title), current),
    chart,
    h('div', { class: 'range', 'aria-hidden': 'true' }, low, high),
  );

  const push = (value, at = Date.now()) => {
    if (!Number.isFinite(value)) return;
    points.push({ at, value });
    while (points.length && at - points[0].at > windowMs) points.shift();
    const values = points.map((p) => p.value);
    const min = Math.min(...values);
    const max = Math.max(...values);
    const span = max - min || 1;
    // Until the window is full, the history so far fills the width.
    const start = points[0].at;
    const width = Math.max(at - start, 1);
    const xy = points.map((p) => {
      const x = points.length === 1 ? WIDTH : ((p.at - start) / width) * WIDTH;
      const y = HEIGHT - 4 - ((p.value - (max === min ? min - 0.5 : min)) / span) * (HEIGHT - 8);
      return `${x.toFixed(1)},${Math.max(2, Math.min(HEIGHT - 2, y)).toFixed(1)}`;
    });
    line.setAttribute('points', xy.join(' '));
    if (xy.length > 0) {
      const firstX = xy[0].split(',')[0];
      const lastX = xy.at(-1).split(',')[0];
      area.setAttribute('points', `${firstX},${HEIGHT} ${xy.join(' ')} ${lastX},${HEIGHT}`);
    }
    current.textContent = format(value);
    const minutes = Math.max(1, Math.round(Math.min(windowMs, at - points[0].at) / 60_000));
    low.textContent = `low ${format(min)}`;
    high.textContent = `high ${format(max)}`;
    chart.setAttribute(
      'aria-label',
      `${title}: now ${format(value)}; over the last ${minutes === 1 ? 'minute' : `${minutes} minutes`} between ${format(min)} and ${format(max)}`,
    );
  };
  return { el, push };
}
