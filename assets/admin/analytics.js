// Site analytics: one /api/stats answer drawn as it is (so the numbers are the API's),
// plus the recent 404s and raw events from /api/events with keyset paging.
import { get } from "./api.js";
import { h, section, ranked, table, fmtNum, fmtTime, timelineChart, applyShares } from "./ui.js";
import { rangeControl, statsQuery } from "./stats.js";

const PAGE = 25;

function tile(id, label, value) {
  return h("div", { class: "tile", id }, h("span", { class: "n", text: fmtNum(value) }), h("span", { class: "k", text: label }));
}

// 404s are events of type 404: the newest 500 of them, counted by path.
async function notFound(site) {
  const q = new URLSearchParams({ type: "404", limit: 500 });
  if (site) q.set("site", site);
  const { events } = await get("/api/events?" + q);
  const counts = new Map();
  for (const e of events) counts.set(e.path, (counts.get(e.path) || 0) + 1);
  return [...counts].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count).slice(0, 10);
}

function eventsSection(site) {
  const body = h("div");
  const pager = h("div", { class: "row" });
  const box = section("Recent events", "events", body, pager);
  const show = async (before) => {
    const q = new URLSearchParams({ limit: PAGE });
    if (site) q.set("site", site);
    if (before) q.set("before", before);
    const page = await get("/api/events?" + q);
    body.replaceChildren(table([
      ["Time", (e) => fmtTime(e.ts)],
      ["Type", (e) => e.type],
      ["Host", (e) => e.domain, "hide-narrow"],
      ["Path", (e) => h("span", { class: "mono", text: e.path })],
      ["Referrer", (e) => e.referrer, "hide-narrow"],
      ["Tags", (e) => (e.tags || []).join(", "), "hide-narrow"],
    ], page.events, "No events."));
    pager.replaceChildren(...[
      before ? h("button", { type: "button", class: "secondary", text: "Newest", onclick: () => show(null) }) : null,
      page.next_before ? h("button", { type: "button", class: "secondary", id: "older", text: "Older", onclick: () => show(page.next_before) }) : null,
    ].filter(Boolean));
  };
  return { box, show };
}

export async function render(root, { params, nav }) {
  const site = params.get("site") || "";
  const range = params.get("range") || "7d";
  const from = params.get("from") || "", to = params.get("to") || "";
  const bucket = params.get("bucket") || "";
  const go = (changes) => nav("analytics", Object.fromEntries(Object.entries({ site, range, from, to, bucket, ...changes }).filter(([, v]) => v)));
  const [{ sites }, { domains }, stats] = await Promise.all([
    get("/api/sites"),
    get("/api/domains?limit=1000"),
    get("/api/stats?" + statsQuery({ range, from, to, bucket, site, top: 10 })),
  ]);
  // top_404s follows the range; a server without it gets the recent 404 events counted.
  const missing = stats.top_404s || (await notFound(site));
  // Domains that sent events but are not a site's host (FAZT_TRACK_DOMAINS).
  const hosts = new Set(sites.map((s) => new URL(s.url).hostname));
  const others = domains.map((d) => d.domain).filter((d) => !hosts.has(d) && d !== "(other)");
  const picker = h("select", { id: "site", onchange: () => go({ site: picker.value }) },
    h("option", { value: "", text: "All sites", selected: !site }),
    h("optgroup", { label: "Sites" }, sites.map((s) => h("option", { value: s.name, text: s.name, selected: s.name === site }))),
    others.length ? h("optgroup", { label: "Other domains" }, others.map((d) => h("option", { value: d, text: d, selected: d === site }))) : null);
  const bucketPicker = h("select", { id: "bucket", onchange: () => go({ bucket: bucketPicker.value }) },
    ["hour", "day"].map((b) => h("option", { value: b, text: "by " + b, selected: b === stats.bucket })));
  const fromIn = h("input", { type: "date", value: from, required: true });
  const toIn = h("input", { type: "date", value: to });
  const custom = range === "custom" ? h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); go({ from: fromIn.value, to: toIn.value }); } },
    h("label", {}, "From ", fromIn),
    h("label", {}, "To (included) ", toIn),
    h("button", { text: "Show" })) : null;
  const t = stats.totals;
  const events = eventsSection(site);
  const campaigns = [
    ...stats.top_utm_sources.map((r) => ({ ...r, value: "source: " + r.value })),
    ...stats.top_utm_mediums.map((r) => ({ ...r, value: "medium: " + r.value })),
    ...stats.top_utm_campaigns.map((r) => ({ ...r, value: "campaign: " + r.value })),
  ];
  root.append(...[
    h("div", { class: "controls" },
      h("h1", { text: "Analytics" }),
      h("label", {}, "Site ", picker),
      rangeControl(range, (r) => go({ range: r, bucket: "" }), { custom: true }),
      h("label", {}, "Timeline ", bucketPicker)),
    custom,
    section(site ? `${site}: ${fmtTime(stats.from)} to ${fmtTime(stats.to)}` : `All sites: ${fmtTime(stats.from)} to ${fmtTime(stats.to)}`, "summary",
      h("div", { class: "tiles" },
        tile("stat-visitors", "visitors", t.visitors),
        tile("stat-pageviews", "pageviews", t.pageviews),
        tile("stat-events", "events", t.events)),
      timelineChart(stats, site || "All sites")),
    h("div", { class: "grid stack" },
      ranked("Top pages", "top-pages", stats.top_paths),
      ranked("Referrers", "referrers", stats.top_referrers),
      ranked("Campaigns", "campaigns", campaigns),
      ranked("Event types", "event-types", stats.event_types),
      ranked("Tags", "tags", stats.top_tags),
      ranked("Redirect clicks", "redirect-clicks", stats.redirect_clicks),
      ranked(stats.top_404s ? "404s" : "404s (recent)", "not-found", missing, "No 404s.")),
    events.box].filter(Boolean));
  applyShares(root);
  await events.show(null);
}
