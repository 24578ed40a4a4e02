// Formatters for the panel's tables and charts (the chat page's are in format.js).

export { fmtMs, fmtNum } from "./format.js";

const DASH = "–";

export function fmtInt(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return DASH;
  return Math.round(n).toLocaleString("en-US");
}

// Dollars: at least cents, more digits for sub-cent amounts (a single cheap request).
export function fmtUsd(usd) {
  if (typeof usd !== "number" || !Number.isFinite(usd)) return DASH;
  if (usd !== 0 && Math.abs(usd) < 0.01) return `$${usd.toLocaleString("en-US", { maximumSignificantDigits: 2 })}`;
  return `$${usd.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

// A value for a chart's axis and "last" label: 3 significant digits, k/M for large ones.
export function fmtCompact(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return DASH;
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${Number((n / 1e6).toPrecision(3))}M`;
  if (abs >= 1e4) return `${Number((n / 1e3).toPrecision(3))}k`;
  if (abs >= 100) return String(Math.round(n));
  if (abs === 0) return "0";
  return String(Number(n.toPrecision(3)));
}

// ms since the epoch -> "2026-03-01 12:00:05" in local time (tables sort and scan well this way).
export function fmtTime(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) return DASH;
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtClock(seconds) {
  const d = new Date(seconds * 1000);
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

export function fmtDayClock(seconds) {
  const d = new Date(seconds * 1000);
  return d.toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
}

// Today's UTC date as YYYY-MM-DD, and the first of this UTC month: budget periods are UTC calendar.
export function utcDay(ms = Date.now()) {
  return new Date(ms).toISOString().slice(0, 10);
}

export function utcMonthStart(ms = Date.now()) {
  return `${utcDay(ms).slice(0, 7)}-01`;
}

export function orDash(value) {
  return value === null || value === undefined || value === "" ? DASH : String(value);
}

// A datetime-local input's value (the browser's time zone) as ms since the epoch; null when empty.
export function localMs(value) {
  if (!value) return null;
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms : null;
}

// A secret as the gateway shows it when the config file holds it as it is, and the only form a
// secret may be sent in: a reference to a variable of the gateway's environment.
export const MASK = "********";
export const REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;
