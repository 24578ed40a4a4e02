// Entry point of the operator panel: who is signed in (GET /auth/status), the login form when a
// key is needed, the header, and the tabs (one object per tab, opened by the URL's #hash).

import { Api } from "./panel-api.js";
import { Login } from "./auth.js";
import { confirmDialog, LiveRegion, makeConfirmDialog, setupTheme } from "./ui.js";
import { Tabs } from "./panel-tabs.js";
import { OverviewTab } from "./panel-overview.js";
import { ModelsTab } from "./panel-models.js";
import { ServicesTab } from "./panel-services.js";
import { PluginsTab } from "./panel-plugins.js";
import { KeysTab } from "./panel-keys.js";
import { SpendTab } from "./panel-spend.js";
import { RequestsTab } from "./panel-requests.js";
import { AuditTab } from "./panel-audit.js";

const $ = (sel) => document.querySelector(sel);

function main() {
  setupTheme($("#theme-toggle"));
  const live = new LiveRegion($("#live-status"));
  let session = null;
  const api = new Api({ onUnauthorized: () => session?.check() });
  const confirmEl = makeConfirmDialog($("#live-status"));
  const confirm = (opts) => confirmDialog(confirmEl, opts);
  const panel = (name) => $(`#tab-${name}`);
  const keys = new KeysTab(panel("keys"), api, { confirm, live });
  const models = new ModelsTab(panel("models"), api, { confirm, live });
  const services = new ServicesTab(panel("services"), api, { confirm, live });
  const plugins = new PluginsTab(panel("plugins"), api, { live });
  const tabs = new Tabs($("#tabs"), {
    overview: new OverviewTab(panel("overview"), api),
    models,
    services,
    plugins,
    keys,
    spend: new SpendTab(panel("spend"), api),
    requests: new RequestsTab(panel("requests"), api),
    audit: new AuditTab(panel("audit"), api),
  }, panel);

  const login = new Login({ brand: "clawdbot panel", hint: "The master key, an admin key, or a viewer key.",
    before: confirmEl }, { onLoggedIn: () => session.check() });

  session = {
    async check() {
      let status;
      try {
        status = await api.status();
      } catch (err) {
        tabs.stop();
        showNoAccess(`Could not reach the gateway: ${err.message}`);
        return;
      }
      if (status.required && !status.authenticated) {
        tabs.stop();
        header(null);
        login.show();
        return;
      }
      login.hide();
      header(status);
      if (status.role !== "admin" && status.role !== "viewer") {
        tabs.stop();
        showNoAccess();
        return;
      }
      $("#no-access").hidden = true;
      $("#gateway-error").hidden = true;
      $("#tabs").hidden = false;
      keys.setRole(status.role);
      models.setRole(status.role);
      services.setRole(status.role);
      plugins.setRole(status.role);
      document.body.dataset.role = status.role;
      tabs.start();
    },
  };

  function header(status) {
    $("#who").textContent = status ? status.user || "" : "";
    const role = $("#role");
    role.textContent = status?.role || "";
    role.className = `role-badge ${status?.role || ""}`;
    role.hidden = !status?.role;
    $("#logout").hidden = !status?.required;
  }

  function showNoAccess(message) {
    $("#tabs").hidden = true;
    $("#no-access").hidden = Boolean(message);
    const error = $("#gateway-error");
    error.textContent = message || "";
    error.hidden = !message;
    document.body.classList.remove("locked");
  }

  $("#logout").addEventListener("click", async () => {
    try {
      await api.logout();
    } catch { /* the status check below says where we are */ }
    live.say("Logged out.");
    session.check();
  });

  session.check();
}

main();
