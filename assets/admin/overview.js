// Overview: totals and the timeline of every site together, each site with its numbers
// and a sparkline, pageviews of the last five minutes, and a health strip.
import { get } from "./api.js";
import { h, section, fmtNum, fmtBytes, fmtDuration, timelineChart, sparkline, table } from "./ui.js";
import { rangeControl, statsQuery } from "./stats.js";

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

// Visitors and pageviews of the last five minutes (`/api/live`).
async function live(el) {
  const now = await get("/api/live");
  const mins = Math.round(now.window_seconds / 60);
  el.replaceChildren(
    tile("live-visitors", `visitors, last ${mins} min`, fmtNum(now.visitors)),
    tile("live-pageviews", `pageviews, last ${mins} min`, fmtNum(now.pageviews)),
    tile("live-events", `events, last ${mins} min`, fmtNum(now.events)));
}

export async function render(root, { params, nav }) {
  const range = params.get("range") || "7d";
  const query = statsQuery({ range });
  // Two calls for the numbers: every site together (with visitors per bucket), and each
  // site's totals and pageview timeline in one answer.
  const [stats, bySite, health] = await Promise.all([
    get("/api/stats?" + query),
    get("/api/stats?by=site&" + query),
    get("/api/system/health"),
  ]);
  const t = stats.totals;
  const liveTiles = h("div", { class: "tiles", id: "live", "aria-live": "polite" });
  const q = (name) => "#/analytics?" + new URLSearchParams({ site: name, range });
  const sitesBox = table([
    ["Site", (s) => (s.kind === "site" ? h("a", { href: q(s.site), text: s.site }) : s.site + " (tracked elsewhere)")],
    ["Visitors", (s) => fmtNum(s.visitors), "num"],
    ["Pageviews", (s) => fmtNum(s.pageviews), "num"],
    ["Trend", (s) => sparkline(s.timeline, `${s.site}: pageviews by ${bySite.bucket}, ${s.pageviews} in all`), "hide-narrow"],
  ], bySite.sites, "No sites yet.");
  for (const [i, tr] of [...sitesBox.querySelectorAll("tbody tr")].entries()) tr.dataset.site = bySite.sites[i].site;
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
  await live(liveTiles).catch(() => {});
  // Only while the tab is seen: a hidden dashboard costs the server nothing.
  const timer = setInterval(() => document.hidden || live(liveTiles).catch(() => {}), LIVE_POLL_MS);
  return () => clearInterval(timer);
}
