// API keys: the list with last use, a new key shown once with a copy button, revoke.
import { get, post, del } from "./api.js";
import { h, put, section, table, fmtTime, fmtAgo, status, shownOnce } from "./ui.js";

export async function render(root) {
  const list = h("div");
  const msg = status();
  const created = h("div", { id: "new-key" });
  async function refresh() {
    const { keys } = await get("/api/keys");
    list.replaceChildren(table([
      ["Name", (k) => k.name],
      ["Id", (k) => h("code", { text: k.id })],
      ["Scope", (k) => k.scope],
      ["Created", (k) => fmtTime(k.created_at), "hide-narrow"],
      ["Last used", (k) => k.last_used_at ? fmtAgo(k.last_used_at) : "never"],
      ["", (k) => h("button", { type: "button", class: "small danger", text: "Revoke", "data-revoke": k.id, onclick: () => revoke(k) })],
    ], keys, "No keys."));
  }
  async function revoke(k) {
    if (!confirm(`Revoke the key ${k.name} (${k.id})? Scripts using it stop working at once.`)) return;
    try {
      await del("/api/keys/" + encodeURIComponent(k.id));
      msg.ok(`Key ${k.name} revoked.`);
      await refresh();
    } catch (err) { msg.fail(err); }
  }
  const name = h("input", { id: "key-name", required: true, maxlength: 64, autocomplete: "off" });
  const scope = h("input", { id: "key-scope", value: "owner", required: true, autocomplete: "off", "aria-describedby": "scope-hint" });
  const form = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    created.replaceChildren();
    try {
      const k = await post("/api/keys", { name: name.value.trim(), scope: scope.value.trim() });
      created.replaceChildren(shownOnce(`Key ${k.name}`, k.token, "new-key-token"));
      msg.ok(`Key ${k.name} created.`);
      form.reset();
      scope.value = "owner";
      await refresh();
    } catch (err) { msg.fail(err); }
  } },
  h("label", {}, "Name ", name), h("label", {}, "Scope ", scope), h("button", { text: "Create key" }));
  await refresh();
  put(root, h("h1", { text: "API keys" }),
    section("New key", "create-key", form,
      h("p", { class: "hint", id: "scope-hint", text: "Scope: owner (everything), deploy:* (every site but root and 404) or deploy:NAME, comma-separated." }),
      created, msg),
    section("Keys", "key-list", list));
}
