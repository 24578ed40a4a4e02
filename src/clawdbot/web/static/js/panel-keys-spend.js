// What keys, users and teams spent in their budget's period (a UTC day or month, or all time; all
// time without a budget), and how close that is to the budget: the Keys tab's three tables share it.

import { h } from "./dom.js";
import { fmtUsd, utcDay, utcMonthStart } from "./panel-format.js";
import { tag } from "./panel-table.js";

export const NEAR_LIMIT = 0.8;
const PERIOD_SINCE = { day: () => utcDay(), month: () => utcMonthStart(), total: () => null };
const ROWS = 1000;

// The period a record's spend is counted in: its budget's (a budget without one is for all time).
export function periodOf(r) {
  return r.budget_usd != null ? r.budget_period || "total" : "total";
}

// {period: Map(id -> USD)} for "total" and each budget period the records use, from
// GET /admin/api/spend grouped by `groupBy` (key, user or team); null when there is no spend report
// (a memory:// database).
export async function spendByPeriod(api, groupBy, records) {
  const periods = new Set(["total"]);
  for (const r of records) periods.add(periodOf(r));
  const out = {};
  try {
    await Promise.all([...periods].map(async (p) => {
      const report = await api.admin("spend", { group_by: groupBy, since: PERIOD_SINCE[p](), limit: ROWS });
      const amounts = new Map((report.data || []).map((row) => [row.group, row.cost_usd]));
      // more groups than the report's rows (its 1000 highest): a record not among them is unknown, not 0
      amounts.cut = (report.total?.groups || 0) > amounts.size;
      out[p] = amounts;
    }));
  } catch {
    return null;
  }
  return out;
}

// USD the record spent in its budget's period; null when unknown
export function spentIn(spent, r) {
  const amounts = spent?.[periodOf(r)];
  if (!amounts) return null;
  return amounts.get(r.id) ?? (amounts.cut ? null : 0);
}

export function nearLimit(r, used) {
  return r.budget_usd > 0 && used != null && used / r.budget_usd >= NEAR_LIMIT;
}

export function budgetText(r) {
  return r.budget_usd != null ? `${fmtUsd(r.budget_usd)} / ${r.budget_period || "total"}` : "–";
}

export function spendCell(used, budget) {
  if (used == null) return "–";
  if (!(budget > 0)) return fmtUsd(used);
  const share = used / budget;
  const pct = `${Math.round(share * 100)}%`;
  if (share >= 1) return [fmtUsd(used), " ", tag(`${pct}: budget used up`, "bad")];
  if (share >= NEAR_LIMIT) return [fmtUsd(used), " ", tag(pct, "warn")];
  return `${fmtUsd(used)} (${pct})`;
}

// The name of a user or team by id (the id itself when the list does not have it), or a dash.
export function nameOf(byId, id) {
  if (!id) return null;
  const r = byId.get(id);
  return r ? r.name : h("span", { class: "mono" }, id);
}
