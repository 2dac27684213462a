// A site's serverless app, in the site view: its environment variables (key, length and
// last change; a value is sent, never shown back) and its latest log lines, newest last.
import { api, get, del } from "./api.js";
import { h, table, fmtTime, status } from "./ui.js";

const base = (site) => `/api/sites/${encodeURIComponent(site)}`;
const LEVELS = { warn: "warn", error: "bad" };
// `2026-12-03 10:15:02.123` (UTC), as `fazt logs` prints it.
const fmtMs = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 23);

export async function envPanel(site) {
  const list = h("div");
  const msg = status();
  async function refresh() {
    const { env } = await get(base(site) + "/env");
    list.replaceChildren(table([
      ["Key", (v) => h("code", { text: v.key })],
      ["Length", (v) => `${v.length} bytes`, "num"],
      ["Updated", (v) => fmtTime(v.updated_at)],
      ["", (v) => h("button", { type: "button", class: "small danger", text: "Delete", "data-env-delete": v.key, onclick: () => remove(v.key) })],
    ], env, "No environment variables."));
  }
  async function remove(key) {
    if (!confirm(`Delete ${key} of ${site}? Its scripts no longer see it.`)) return;
    try {
      await del(`${base(site)}/env/${encodeURIComponent(key)}`);
      msg.ok(`${key} deleted.`);
      await refresh();
    } catch (err) { msg.fail(err); }
  }
  const key = h("input", { id: "env-key", required: true, maxlength: 128, pattern: "[A-Za-z_][A-Za-z0-9_]*", autocomplete: "off", spellcheck: false });
  // A password field: the value is not shown while typed, nor kept by the browser.
  const value = h("input", { id: "env-value", type: "password", maxlength: 4096, autocomplete: "new-password" });
  const form = h("form", { class: "row", id: "env-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const r = await api(`${base(site)}/env/${encodeURIComponent(key.value)}`, { method: "PUT", body: { value: value.value } });
      msg.ok(`${r.key} set (${r.length} bytes).`);
      form.reset();
      await refresh();
    } catch (err) { msg.fail(err); }
  } }, h("label", {}, "Key ", key), h("label", {}, "Value ", value), h("button", { text: "Set" }));
  await refresh();
  return h("div", { id: "env" },
    h("h3", { text: `Environment of ${site}` }), list, form,
    h("p", { class: "hint", text: "fazt.env in the site's scripts. Setting a key that exists replaces its value; values are never shown back." }),
    msg);
}

export async function logsPanel(site) {
  const list = h("div");
  const msg = status();
  async function refresh() {
    const { logs } = await get(base(site) + "/logs?limit=100");
    list.replaceChildren(table([
      ["Time (UTC)", (l) => h("span", { class: "mono", text: fmtMs(l.ts) })],
      ["Level", (l) => h("span", { class: "pill " + (LEVELS[l.level] || ""), text: l.level })],
      ["Message", (l) => h("span", { class: "mono log", text: l.message })],
    ], logs, "No log lines yet: console.log and friends in the site's scripts write here."));
  }
  const again = async () => {
    try { await refresh(); msg.clear(); } catch (err) { msg.fail(err); }
  };
  await refresh();
  return h("div", { id: "logs" },
    h("div", { class: "row spread" }, h("h3", { text: `Logs of ${site}` }),
      h("button", { type: "button", class: "small", id: "logs-refresh", text: "Refresh", onclick: again })),
    list, msg);
}
