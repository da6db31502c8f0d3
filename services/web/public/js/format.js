// Money, dates and durations in the buyer's own locale.

/** Digits after the decimal point of a currency (2 for EUR, 0 for JPY). */
export function minorDigits(currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
      .maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** `4500, 'EUR'` → `€45.00`. */
export function money(cents, currency) {
  const digits = minorDigits(currency);
  const amount = cents / 10 ** digits;
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(amount);
  } catch {
    return `${amount.toFixed(digits)} ${currency}`;
  }
}

/** `'45.5', 'EUR'` → `4550` minor units, or `null` when it is not an amount. */
export function parseMoney(text, currency) {
  const digits = minorDigits(currency);
  const cleaned = String(text).trim().replace(',', '.');
  const pattern = digits > 0 ? new RegExp(`^\\d+(\\.\\d{1,${digits}})?$`) : /^\d+$/;
  if (!pattern.test(cleaned)) return null;
  const [whole, fraction = ''] = cleaned.split('.');
  return Number(whole) * 10 ** digits + Number(fraction.padEnd(digits, '0') || 0);
}

const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  weekday: 'short',
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** An RFC 3339 time as the reader's local date and time. */
export function dateTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateTimeFormat.format(date);
}

/** A time of day with seconds. */
export function clockTime(date) {
  return timeFormat.format(date);
}

/** A `<time>` value for a date. */
export function isoString(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}

/** `1, 'person', 'people'` → `1 person`; numbers grouped by locale. */
export function count(n, one, many) {
  return `${new Intl.NumberFormat().format(n)} ${n === 1 ? one : many}`;
}

/** A number grouped by locale. */
export function num(n) {
  return new Intl.NumberFormat().format(n);
}

/** Seconds as an honest, rounded wait: "less than a minute", "about 4 minutes". */
export function wait(seconds) {
  if (seconds < 60) return 'less than a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${count(minutes, 'minute', 'minutes')}`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  const h = count(hours, 'hour', 'hours');
  return rest >= 5 ? `about ${h} ${count(rest, 'minute', 'minutes')}` : `about ${h}`;
}

/** Seconds as a range of minutes, for uncertain waits: "4 to 9 minutes". */
export function waitRange(low, high) {
  const lo = Math.max(1, Math.round(low / 60));
  const hi = Math.max(lo + 1, Math.round(high / 60));
  if (hi >= 120) return `${wait(low)} to ${wait(high).replace('about ', '')}`;
  return `${num(lo)} to ${num(hi)} minutes`;
}

/** Seconds as `m:ss` (or `h:mm:ss`). */
export function countdown(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = String(s % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${secs}` : `${minutes}:${secs}`;
}

/** Seconds as words for screen readers: "4 minutes 12 seconds". */
export function spokenDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const minutes = Math.floor(s / 60);
  const secs = s % 60;
  if (minutes === 0) return count(secs, 'second', 'seconds');
  return secs === 0
    ? count(minutes, 'minute', 'minutes')
    : `${count(minutes, 'minute', 'minutes')} ${count(secs, 'second', 'seconds')}`;
}

/** Human words for an event's status. */
export const EVENT_STATUS = {
  scheduled: 'Sale opens soon',
  on_sale: 'On sale',
  sold_out: 'Sold out',
  ended: 'Sale ended',
};

/** Human words for an order's status. */
export const ORDER_STATUS = {
  pending_payment: 'Payment in progress',
  paid: 'Paid',
  payment_failed: 'Payment failed',
  expired: 'Expired',
};

/** Short words for an order's refund, beside its status. */
export const REFUND_STATUS = {
  pending: 'Refund in progress',
  refunded: 'Refunded',
  failed: 'Refund failed',
};

/**
 * What the buyer is told about an order's refund (a payment approved after the order's hold
 * ended is given back): why, and where the money is. `null` when the order has no refund.
 */
export function refundWords(order) {
  const refund = order?.refund;
  if (!refund) return null;
  const why = 'Your payment arrived after your hold ended, so no ticket was issued.';
  const at = dateTime(refund.at);
  switch (refund.status) {
    case 'pending':
      return { tone: 'warn', why, state: `Refund in progress (asked ${at}).` };
    case 'refunded':
      return { tone: 'warn', why, state: `Refunded on ${at}: the payment was given back.` };
    case 'failed':
      return {
        tone: 'bad',
        why,
        state: `The refund could not be made automatically — contact support with order ${order.id}.`,
      };
    default:
      return { tone: 'warn', why, state: `Refund: ${refund.status} (${at}).` };
  }
}
