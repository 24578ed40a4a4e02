// The pure parts of the Keys tab: the create form as an admin API body, a key's status, its limits
// as one line of text.

import { fmtInt } from "./panel-format.js";

// {body} for POST /admin/api/keys, or {error} naming what to fix. Empty fields are left out.
export function readKeyForm(form) {
  const name = form.querySelector("#key-name").value.trim();
  if (!name) return { error: "Give the key a name." };
  const body = { name };
  const models = [...form.querySelectorAll('#key-models input[name="model"]:checked')].map((i) => i.value);
  if (models.length) body.allowed_models = models;
  const rpm = form.querySelector("#key-rpm").value.trim();
  if (rpm) {
    const n = Number(rpm);
    if (!Number.isInteger(n) || n < 0) return { error: "Requests per minute must be a whole number, 0 or more." };
    body.rpm = n;
  }
  const budget = form.querySelector("#key-budget").value.trim();
  if (budget) {
    const usd = Number(budget);
    if (!Number.isFinite(usd) || usd < 0) return { error: "The budget must be an amount in USD, 0 or more." };
    body.budget_usd = usd;
    body.budget_period = form.querySelector("#key-period").value;
  }
  return { body };
}

export function keyStatus(k, now = Date.now()) {
  if (k.revoked_at) return "revoked";
  if (k.expires_at && k.expires_at <= now) return "expired";
  return "active";
}

export function limitsText(k) {
  const parts = [];
  if (k.rpm != null) parts.push(`${fmtInt(k.rpm)} rpm`);
  if (k.tpm != null) parts.push(`${fmtInt(k.tpm)} tpm`);
  if (k.max_parallel != null) parts.push(`${fmtInt(k.max_parallel)} parallel`);
  return parts.length ? parts.join(" · ") : "none";
}
