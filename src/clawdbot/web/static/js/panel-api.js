// The panel's HTTP client: same-origin fetches with the session cookie; every write carries the
// CSRF token from /auth/status. Errors come back in the OpenAI shape and become ApiError.

export class ApiError extends Error {
  constructor(status, message, code, param) {
    super(message);
    this.status = status;
    this.code = code || null;
    this.param = param || null;  // the body field a 400 names (the key editor shows it by that field)
  }
}

async function errorOf(res) {
  let message = `HTTP ${res.status}`;
  let code = null;
  let param = null;
  try {
    const body = await res.json();
    const err = body && body.error;
    if (err && typeof err.message === "string") message = err.message;
    if (err && typeof err.code === "string") code = err.code;
    if (err && typeof err.param === "string") param = err.param;
  } catch { /* not JSON: the status says enough */ }
  return new ApiError(res.status, message, code, param);
}

export class Api {
  // onUnauthorized: the session ended or lost its panel access
  constructor({ onUnauthorized }) {
    this.csrf = "";
    this.onUnauthorized = onUnauthorized;
  }

  async status() {
    const res = await fetch("/auth/status", { credentials: "same-origin", cache: "no-store" });
    if (!res.ok) throw await errorOf(res);
    const out = await res.json();
    this.csrf = typeof out.csrf === "string" ? out.csrf : "";
    return out;
  }

  async logout() {
    await this.request("POST", "/auth/logout", {});
    this.csrf = "";
  }

  get(path, params) {
    return this.request("GET", withQuery(path, params));
  }

  // `/panel/api/admin/<rest>` is the admin API behind the session cookie.
  admin(rest, params) {
    return this.get(`/panel/api/admin/${rest}`, params);
  }

  adminWrite(method, rest, body) {
    return this.request(method, `/panel/api/admin/${rest}`, body);
  }

  async request(method, path, body) {
    const init = { method, credentials: "same-origin", cache: "no-store", headers: {} };
    if (method !== "GET") {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-Clawdbot-CSRF"] = this.csrf;
      init.body = JSON.stringify(body ?? {});
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, "Could not reach the gateway.");
    }
    if (!res.ok) {
      const err = await errorOf(res);
      // logged out, or the key lost its panel role (revoked, metadata changed): ask who we are again
      if (res.status === 401 || err.code === "panel_forbidden") this.onUnauthorized();
      throw err;
    }
    return res.status === 204 ? null : res.json();
  }
}

// "/x" + {a: 1, b: "", c: null} -> "/x?a=1": empty values are left out (the admin API refuses them).
export function withQuery(path, params) {
  if (!params) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "" || v === false) continue;
    q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}
