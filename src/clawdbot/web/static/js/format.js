// Small number/time formatters shared by the trace, debug and session views.

export function fmtMs(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "–";
  if (ms >= 10000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${Number(ms.toFixed(1))} ms`;
}

export function fmtNum(n, digits = 1) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

export function fmtPct(rate) {
  if (typeof rate !== "number" || !Number.isFinite(rate)) return "–";
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.01 ? 2 : 1)}%`;
}

export function fmtDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${s % 60}s`;
  return `${s}s`;
}

const DAY = 86400000;

export function relativeTime(ts, now = Date.now()) {
  if (typeof ts !== "number") return "";
  const diff = now - ts;
  if (diff < 60000) return "just now";
  if (diff < 3600000) return `${Math.floor(diff / 60000)} min ago`;
  const date = new Date(ts);
  if (diff < DAY && new Date(now).getDate() === date.getDate()) {
    return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }
  if (diff < 7 * DAY) return date.toLocaleDateString(undefined, { weekday: "short" });
  return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

// Group label for the session list: Today / Yesterday / Previous 7 days / Older.
export function dayGroup(ts, now = Date.now()) {
  const start = new Date(now);
  start.setHours(0, 0, 0, 0);
  const today = start.getTime();
  if (ts >= today) return "Today";
  if (ts >= today - DAY) return "Yesterday";
  if (ts >= today - 7 * DAY) return "Previous 7 days";
  return "Older";
}

export function fullTime(ts) {
  if (typeof ts !== "number") return "";
  return new Date(ts).toLocaleString();
}
