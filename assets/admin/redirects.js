// Short links (/r/<slug>): create, edit (the same POST replaces one), delete; clicks in the
// last 30 days and the last click, from the redirect events.
import { get, post, del } from "./api.js";
import { h, put, section, table, fmtNum, fmtAgo, status, copyButton } from "./ui.js";

const MONTH = 30 * 86400;

export async function render(root) {
  const list = h("div");
  const msg = status();
  const slug = h("input", { id: "redirect-slug", required: true, pattern: "[A-Za-z0-9_-]+", autocomplete: "off" });
  const url = h("input", { id: "redirect-url", type: "url", required: true, placeholder: "https://…" });
  const tags = h("input", { id: "redirect-tags", autocomplete: "off", placeholder: "newsletter,march" });
  const submit = h("button", { text: "Save short link" });
  const form = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const r = await post("/api/redirects", { slug: slug.value.trim(), url: url.value.trim(), tags: tags.value.trim() });
      msg.ok(`/r/${r.slug} saved.`);
      form.reset();
      submit.textContent = "Save short link";
      await refresh();
    } catch (err) { msg.fail(err); }
  } },
  h("label", {}, "Slug ", slug), h("label", {}, "Target URL ", url), h("label", {}, "Tags ", tags), submit);

  async function refresh() {
    const from = Math.floor(Date.now() / 1000) - MONTH;
    const [{ redirects }, stats, { events }, { sites }] = await Promise.all([
      get("/api/redirects"),
      get(`/api/stats?from=${from}&top=1000`),
      get("/api/events?type=redirect&limit=500"),
      get("/api/sites"),
    ]);
    const clicks = new Map(stats.redirect_clicks.map((r) => [r.value, r.count]));
    const last = new Map();
    for (const e of events) {
      const s = e.path.replace(/^\/r\//, "");
      if (!last.has(s)) last.set(s, e.ts);
    }
    const rootSite = sites.find((s) => s.name === "root");
    const base = rootSite ? rootSite.url.replace(/\/$/, "") : location.origin;
    list.replaceChildren(table([
      ["Short link", (r) => h("span", {}, h("a", { href: `${base}/r/${r.slug}`, text: "/r/" + r.slug }), " ", copyButton(`${base}/r/${r.slug}`))],
      ["Target", (r) => h("span", { class: "mono", text: r.url })],
      ["Tags", (r) => r.tags.join(", "), "hide-narrow"],
      ["Clicks (30 d)", (r) => fmtNum(clicks.get(r.slug) || 0), "num"],
      ["Last click", (r) => fmtAgo(r.last_at || last.get(r.slug))],
      ["", (r) => h("span", { class: "row" },
        h("button", { type: "button", class: "small", text: "Edit", onclick: () => {
          slug.value = r.slug; url.value = r.url; tags.value = r.tags.join(",");
          submit.textContent = "Save changes"; url.focus();
        } }),
        h("button", { type: "button", class: "small danger", text: "Delete", "data-delete": r.slug, onclick: () => remove(r.slug) }))],
    ], redirects, "No short links yet."));
  }
  async function remove(s) {
    if (!confirm(`Delete the short link /r/${s}?`)) return;
    try {
      await del("/api/redirects/" + encodeURIComponent(s));
      msg.ok(`/r/${s} deleted.`);
      await refresh();
    } catch (err) { msg.fail(err); }
  }
  await refresh();
  put(root, h("h1", { text: "Redirects" }),
    section("New or changed short link", "redirect-form", form,
      h("p", { class: "hint", text: "Saving an existing slug replaces its target and tags. Each click counts as a redirect event with the tags." }), msg),
    section("Short links", "redirect-list", list));
}
