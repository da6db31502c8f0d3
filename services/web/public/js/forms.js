// Labelled fields with hints and errors, and an error summary that links to each field.

import { h, replace, uid } from './dom.js';

/**
 * A labelled input: `{wrap, input, setError}`. Options: label, name, type, hint, value,
 * and any other attributes for the input (`required`, `min`, `autocomplete`, …).
 */
export function field({ label, name, type = 'text', hint, value, ...attrs }) {
  const id = uid(name.replace(/\W/g, '-'));
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const input = h('input', { id, name, type, value, 'aria-describedby': hintId, ...attrs });
  const error = h('span', { class: 'error', id: errorId, hidden: true });
  const wrap = h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    hint ? h('span', { class: 'hint', id: hintId }, hint) : null,
    input,
    error,
  );
  const setError = (message) => {
    if (message) {
      error.textContent = message;
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
    } else {
      error.textContent = '';
      error.hidden = true;
      input.removeAttribute('aria-invalid');
      if (hintId) input.setAttribute('aria-describedby', hintId);
      else input.removeAttribute('aria-describedby');
    }
  };
  return { wrap, input, setError, label };
}

/**
 * Shows errors: `show([{field, message}])` marks each named field and fills `summary` with
 * links to them (focused, so keyboard and screen-reader users land on it); messages for
 * unknown fields are listed as they are.
 */
export function errorReporter(summary, fields) {
  const clear = () => {
    for (const f of Object.values(fields)) f.setError(null);
    summary.hidden = true;
    replace(summary);
  };
  const show = (errors, title = 'Please check the form') => {
    clear();
    const items = [];
    for (const { field: name, message } of errors) {
      const f = fields[name];
      if (f) {
        f.setError(message);
        items.push(
          h(
            'li',
            null,
            h(
              'a',
              {
                href: `#${f.input.id}`,
                onclick: (event) => {
                  event.preventDefault();
                  f.input.focus();
                },
              },
              `${f.label}: ${message}`,
            ),
          ),
        );
      } else {
        items.push(h('li', null, message));
      }
    }
    replace(summary, h('h2', null, title), h('ul', null, items));
    summary.hidden = false;
    summary.focus();
  };
  return { show, clear };
}

/** The container of an error summary. */
export function errorSummary() {
  return h('div', { class: 'error-summary', role: 'alert', tabindex: '-1', hidden: true });
}
