// Building the page without HTML strings: every value from the network goes in as text.

/** Creates an element: `h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child)`. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value' && 'value' in el) el.value = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings, numbers, arrays; null and false are skipped). */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Tells screen readers something (politely, or at once when `urgent`). */
export function announce(message, urgent = false) {
  const region = document.getElementById(urgent ? 'announce-urgent' : 'announce-polite');
  if (!region) return;
  region.textContent = '';
  // A fresh text node after a tick is announced even when it repeats the last message.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

/** A unique id for labels and descriptions. */
let nextId = 0;
export function uid(prefix = 'f') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** `setInterval` that stops when `signal` aborts. */
export function every(ms, fn, signal) {
  const timer = setInterval(fn, ms);
  signal.addEventListener('abort', () => clearInterval(timer));
  return timer;
}

/** Resolves after `ms`, or rejects with AbortError when `signal` aborts first. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new DOMException('Aborted', 'AbortError'));
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason ?? new DOMException('Aborted', 'AbortError'));
      },
      { once: true },
    );
  });
}

/** Whether an error is the one an aborted fetch or sleep throws. */
export function isAbort(error) {
  return error?.name === 'AbortError';
}

/** A small loading line. */
export function loading(text = 'Loading…') {
  return h('p', { class: 'muted', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' ', text);
}
