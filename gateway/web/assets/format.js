// Money and time. Amounts travel as integers in the currency's minor units; they are turned
// into text with Intl.NumberFormat and parsed back with string arithmetic (never floats).
// Times travel as µs since the Unix epoch and are shown in the viewer's time zone, named.

const AMOUNT_MAX = 1_000_000_000_000_000; // the API's limit, minor units

const formats = new Map();

function moneyFormat(currency) {
  let format = formats.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
    } catch {
      format = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'XXX' });
    }
    formats.set(currency, format);
  }
  return format;
}

const digitsOf = new Map();

/** Digits after the decimal point of `currency` (EUR 2, JPY 0, BHD 3). Kept per currency:
 * resolvedOptions() makes an object a call, and a hot auction formats hundreds of amounts a
 * frame. */
export function minorDigits(currency) {
  let digits = digitsOf.get(currency);
  if (digits === undefined) {
    digits = moneyFormat(currency).resolvedOptions().maximumFractionDigits;
    digitsOf.set(currency, digits);
  }
  return digits;
}

/** `minor` units of `currency` as text, e.g. money(1250, 'EUR') → "€12.50". */
export function money(minor, currency) {
  if (minor === null || minor === undefined) return '–';
  const digits = minorDigits(currency);
  // Integer division keeps exactness up to 2^53; only the display rounds.
  return moneyFormat(currency).format(minor / 10 ** digits);
}

/**
 * Parses what a person typed ("12", "12.5", "1,234.50", "12,50") into minor units.
 * Returns { minor } or { error } with a sentence to show.
 */
export function parseMoney(text, currency) {
  const digits = minorDigits(currency);
  let value = String(text ?? '').trim().replace(/[\s\u00a0'’]/g, '');
  if (value === '') return { error: 'Enter an amount.' };
  if (/[^0-9.,]/.test(value)) return { error: 'Use digits and a decimal point only.' };
  // "1,234" or "1.234.567" (one kind of separator, groups of three) are thousands; in
  // anything else the last separator is the decimal point ("12,50", "1,234.50").
  const grouped = digits !== 3 && /^[1-9]\d{0,2}(?:([.,])\d{3})(?:\1\d{3})*$/.test(value);
  const separator = grouped ? -1 : Math.max(value.lastIndexOf('.'), value.lastIndexOf(','));
  let whole = value;
  let fraction = '';
  if (separator >= 0) {
    whole = value.slice(0, separator);
    fraction = value.slice(separator + 1);
  }
  if (!/^(?:\d*|\d{1,3}(?:[.,]\d{3})+)$/.test(whole) || !/^\d*$/.test(fraction)) {
    return { error: 'Check the amount: for example 12.50' };
  }
  whole = whole.replace(/[.,]/g, '');
  if (fraction.length > digits) {
    return { error: digits === 0 ? 'This currency has no decimals.' : `At most ${digits} decimals.` };
  }
  if (whole === '' && fraction === '') return { error: 'Enter an amount.' };
  const minorText = (whole || '0') + fraction.padEnd(digits, '0');
  if (minorText.replace(/^0+/, '').length > 16) return { error: 'That amount is too large.' };
  const minor = Number(minorText);
  if (!Number.isSafeInteger(minor) || minor < 1) return { error: 'Enter an amount above zero.' };
  if (minor > AMOUNT_MAX) return { error: 'That amount is too large.' };
  return { minor };
}

/** Minor units as a plain decimal for an input's value ("12.50"). */
export function minorToInput(minor, currency) {
  if (minor === null || minor === undefined) return '';
  const digits = minorDigits(currency);
  if (digits === 0) return String(minor);
  const text = String(minor).padStart(digits + 1, '0');
  return `${text.slice(0, -digits)}.${text.slice(-digits)}`;
}

/** The viewer's time zone, e.g. "Europe/Lisbon". */
export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

// dateStyle/timeStyle cannot be combined with timeZoneName: name the fields instead.
const dateTime = new Intl.DateTimeFormat(undefined, {
  weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
});
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

/** µs since the epoch as a date and time in the viewer's zone, with the zone's short name. */
export function when(us) {
  return dateTime.format(new Date(us / 1000));
}

/** µs since the epoch as a time of day (history rows). */
export function clock(us) {
  return timeOnly.format(new Date(us / 1000));
}

/** An ISO string for <time datetime>. */
export function iso(us) {
  return new Date(us / 1000).toISOString();
}

/** A remaining duration in µs as "2d 03h", "1h 02m 05s", "4m 05s" or "9s". */
export function remaining(us) {
  let seconds = Math.max(0, Math.ceil(us / 1e6));
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const two = (n) => String(n).padStart(2, '0');
  if (days > 0) return `${days}d ${two(hours)}h`;
  if (hours > 0) return `${hours}h ${two(minutes)}m ${two(seconds)}s`;
  if (minutes > 0) return `${minutes}m ${two(seconds)}s`;
  return `${seconds}s`;
}

/** A `datetime-local` input value for µs since the epoch, in the viewer's zone. */
export function toLocalInput(us) {
  const date = new Date(us / 1000);
  const two = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}T${two(date.getHours())}:${two(date.getMinutes())}`;
}

/** µs since the epoch for a `datetime-local` value (the viewer's zone), or null. */
export function fromLocalInput(text) {
  if (!text) return null;
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? ms * 1000 : null;
}
