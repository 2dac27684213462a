// Webhook endpoints (/webhook/<endpoint>): create, edit, delete; a generated secret is
// shown once; the last delivery comes from the webhook events.
import { get, post, del } from "./api.js";
import { h, put, section, table, fmtAgo, fmtTime, status, copyButton, shownOnce } from "./ui.js";

function newSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function render(root) {
  const list = h("div");
  const msg = status();
  const shown = h("div", { id: "new-secret" });
  const endpoint = h("input", { id: "webhook-endpoint", required: true, pattern: "[A-Za-z0-9_-]+", autocomplete: "off" });
  const secret = h("input", { id: "webhook-secret", autocomplete: "off", "aria-describedby": "secret-hint" });
  const active = h("input", { type: "checkbox", id: "webhook-active", checked: true });
  const submit = h("button", { text: "Save webhook" });
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    shown.replaceChildren();
    const body = { endpoint: endpoint.value.trim(), active: active.checked };
    if (secret.value) body.secret = secret.value;
    try {
      await post("/api/webhooks", body);
      if (secret.value) shown.replaceChildren(shownOnce(`Secret of ${body.endpoint}`, secret.value, "webhook-secret-shown"));
      msg.ok(`Webhook ${body.endpoint} saved.`);
      form.reset();
      active.checked = true;
      submit.textContent = "Save webhook";
      await refresh();
    } catch (err) { msg.fail(err); }
  } },
  h("div", { class: "row" },
    h("label", {}, "Endpoint ", endpoint),
    h("label", {}, "Secret ", secret),
    h("button", { type: "button", class: "secondary", text: "Generate secret", onclick: () => (secret.value = newSecret()) })),
  h("label", { class: "check" }, active, " Active"), " ", submit,
  h("p", { class: "hint", id: "secret-hint", text: "With a secret, senders sign the body: X-Webhook-Signature is its hex HMAC-SHA256. Saving replaces the secret: leave it empty for an unsigned endpoint." }));

  async function refresh() {
    const [{ webhooks }, { events }, { sites }] = await Promise.all([
      get("/api/webhooks"), get("/api/events?type=webhook&limit=500"), get("/api/sites"),
    ]);
    // Senders use the public address (the admin host may be private): the root site's.
    const rootSite = sites.find((x) => x.name === "root");
    const base = rootSite ? rootSite.url.replace(/\/$/, "") : location.origin;
    const last = new Map();
    for (const e of events) {
      const name = e.path.replace(/^\/webhook\//, "");
      if (!last.has(name)) last.set(name, e.ts);
    }
    list.replaceChildren(table([
      ["Endpoint", (w) => h("span", {}, h("code", { text: `/webhook/${w.endpoint}` }), " ", copyButton(`${base}/webhook/${w.endpoint}`, "Copy URL"))],
      ["Signed", (w) => (w.signed ? "yes" : "no")],
      ["Active", (w) => h("span", { class: "pill " + (w.active ? "ok" : "warn"), text: w.active ? "active" : "paused" })],
      ["Created", (w) => fmtTime(w.created_at), "hide-narrow"],
      ["Last delivery", (w) => fmtAgo(w.last_at || last.get(w.endpoint))],
      ["", (w) => h("span", { class: "row" },
        h("button", { type: "button", class: "small", text: "Edit", onclick: () => {
          endpoint.value = w.endpoint; active.checked = w.active; secret.value = "";
          submit.textContent = "Save changes"; secret.focus();
        } }),
        h("button", { type: "button", class: "small danger", text: "Delete", "data-delete": w.endpoint, onclick: () => remove(w.endpoint) }))],
    ], webhooks, "No webhooks yet."));
  }
  async function remove(name) {
    if (!confirm(`Delete the webhook ${name}? Senders get 404 from then on.`)) return;
    try {
      await del("/api/webhooks/" + encodeURIComponent(name));
      msg.ok(`Webhook ${name} deleted.`);
      await refresh();
    } catch (err) { msg.fail(err); }
  }
  await refresh();
  put(root, h("h1", { text: "Webhooks" }),
    section("New or changed webhook", "webhook-form", form, shown, msg),
    section("Endpoints", "webhook-list", list));
}
