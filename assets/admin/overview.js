// Overview: totals and the timeline of every site together, each site with its numbers
// and a sparkline, pageviews of the last five minutes, and a health strip.
import { get } from "./api.js";
import { h, section, fmtNum, fmtBytes, fmtDuration, timelineChart, sparkline, table } from "./ui.js";
import { rangeControl, statsQuery } from "./stats.js";

const LIVE_WINDOW = 300;
const LIVE_POLL_MS = 10000;

function tile(id, label, value) {
  return h("div", { class: "tile", id }, h("span", { class: "n", text: value }), h("span", { class: "k", text: label }));
}

export function healthStrip(health) {
  const c = health.counters, k = health.cache || {};
  const looked = (k.hits || 0) + (k.misses || 0);
  const used = Math.max(0, ...Object.values((health.disk && health.disk.used_ratio) || {}));
  return h("div", { class: "tiles", id: "health-strip", "aria-label": "System health" },
    h("div", { class: "tile" }, h("span", { class: "n" }, h("span", { class: "pill " + health.status, text: health.status })), h("span", { class: "k", text: "readiness" })),
    tile("h-uptime", "uptime", fmtDuration(health.uptime_seconds)),
    tile("h-memory", "memory (resident)", fmtBytes(health.process.resident_memory_bytes)),
    tile("h-requests", "requests 5xx / total", `${fmtNum(c.requests["5xx"])} / ${fmtNum(Object.values(c.requests).reduce((a, b) => a + b, 0))}`),
    tile("h-cache", "cache hit ratio", looked ? Math.round((k.hits / looked) * 100) + " %" : "—"),
    tile("h-disk", "disk used", Math.round(used * 100) + " %"));
}

// Visitors and pageviews of the last five minutes from /api/live; where the server has no
// such route yet, the pageviews and events the raw-event list shows (the newest 500).
async function live(el) {
  const now = await get("/api/live").catch((err) => (err.status === 404 ? null : Promise.reject(err)));
  if (now) {
    const mins = Math.round((now.window_seconds || LIVE_WINDOW) / 60);
    return el.replaceChildren(
      tile("live-visitors", `visitors, last ${mins} min`, fmtNum(now.visitors)),
      tile("live-pageviews", `pageviews, last ${mins} min`, fmtNum(now.pageviews)));
  }
  const since = Date.now() / 1000 - LIVE_WINDOW;
  const { events } = await get("/api/events?limit=500");
  const recent = events.filter((e) => e.ts >= since);
  const views = recent.filter((e) => e.type === "pageview");
  const pages = new Set(views.map((e) => e.domain + e.path));
  el.replaceChildren(
    tile("live-pageviews", "pageviews, last 5 min", fmtNum(views.length)),
    tile("live-pages", "pages viewed, last 5 min", fmtNum(pages.size)),
    tile("live-events", "events, last 5 min", fmtNum(recent.length)));
}

export async function render(root, { params, nav }) {
  const range = params.get("range") || "7d";
  const [stats, { sites }, health] = await Promise.all([
    get("/api/stats?" + statsQuery({ range })),
    get("/api/sites"),
    get("/api/system/health"),
  ]);
  const t = stats.totals;
  const liveTiles = h("div", { class: "tiles", id: "live", "aria-live": "polite" });
  const siteRows = sites.map((s) => ({ ...s, stats: null }));
  const sitesBox = h("div");
  root.append(
    h("div", { class: "controls" }, h("h1", { text: "Overview" }), rangeControl(range, (r) => nav("overview", { range: r }))),
    section("Health", "health", healthStrip(health), h("p", {}, h("a", { href: "#/system", text: "System details" }))),
    section("All sites", "totals",
      h("div", { class: "tiles" },
        tile("total-visitors", "visitors", fmtNum(t.visitors)),
        tile("total-pageviews", "pageviews", fmtNum(t.pageviews)),
        tile("total-events", "events", fmtNum(t.events))),
      timelineChart(stats, "All sites")),
    section("Live", "live-section", liveTiles),
    section("Sites", "sites-stats", sitesBox));
  // One /api/stats call per site: the API has no per-site breakdown in one answer yet.
  await Promise.all(siteRows.map(async (s) => {
    s.stats = await get("/api/stats?" + statsQuery({ range, site: s.name, top: 1 })).catch(() => null);
  }));
  const q = (name) => "#/analytics?" + new URLSearchParams({ site: name, range });
  sitesBox.append(table([
    ["Site", (s) => h("a", { href: q(s.name), text: s.name })],
    ["Visitors", (s) => s.stats && fmtNum(s.stats.totals.visitors), "num"],
    ["Pageviews", (s) => s.stats && fmtNum(s.stats.totals.pageviews), "num"],
    ["Trend", (s) => s.stats && sparkline(s.stats, `${s.name}: pageviews by ${s.stats.bucket}, ${s.stats.totals.pageviews} in all`), "hide-narrow"],
  ], siteRows.map((s) => s), "No sites yet."));
  for (const [i, tr] of [...sitesBox.querySelectorAll("tbody tr")].entries()) tr.dataset.site = siteRows[i].name;
  await live(liveTiles).catch(() => {});
  // Only while the tab is seen: a hidden dashboard costs the server nothing.
  const timer = setInterval(() => document.hidden || live(liveTiles).catch(() => {}), LIVE_POLL_MS);
  return () => clearInterval(timer);
}
