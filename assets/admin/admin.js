// The admin dashboard: keeps the API key in this browser only and polls readiness.
"use strict";
const $ = (id) => document.getElementById(id);
const KEY = "fazt.apiKey";

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function fill(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
}

async function refresh() {
  const key = localStorage.getItem(KEY);
  $("login").hidden = !!key;
  $("dash").hidden = !key;
  if (!key) return;
  let res;
  try {
    res = await fetch("/api/system/health", { headers: { Authorization: "Bearer " + key } });
  } catch (e) {
    return showError("fazt is not answering: " + e.message);
  }
  if (res.status === 401) { localStorage.removeItem(KEY); showError("That key was refused."); return refresh(); }
  const h = await res.json();
  $("error").hidden = true;
  $("status").textContent = h.status;
  $("status").className = "pill " + h.status;
  const c = h.counters, l = h.limits, k = h.cache || {};
  fill($("health"), [
    ["version", h.version], ["uptime", h.uptime_seconds + " s"],
    ["connections open", c.connections_open], ["requests 2xx / 4xx / 5xx", `${c.requests["2xx"]} / ${c.requests["4xx"]} / ${c.requests["5xx"]}`],
    ["shed (503)", c.shed_requests], ["resident memory", fmtBytes(h.process.resident_memory_bytes)],
  ]);
  fill($("limits"), [
    ["core threads", l.core_threads], ["memory limit", fmtBytes(l.memory_limit_bytes)],
    ["max connections", l.max_connections], ["cache", fmtBytes(l.cache_bytes)],
  ]);
  refreshStats(key);
  fill($("cache"), [
    ["used", fmtBytes(k.bytes_used || 0) + " of " + fmtBytes(k.bytes_limit || 0)],
    ["entries", k.entries], ["hits / misses", `${k.hits} / ${k.misses}`], ["evictions", k.evictions],
  ]);
}

async function refreshStats(key) {
  const res = await fetch("/api/stats?bucket=day", { headers: { Authorization: "Bearer " + key } });
  if (!res.ok) return;
  const s = await res.json();
  fill($("traffic"), [
    ["pageviews", s.totals.pageviews], ["visitors (daily uniques)", s.totals.visitors], ["events", s.totals.events],
  ]);
  const top = (list) => list.length ? list.map((r) => [r.value, r.count]) : [["—", ""]];
  fill($("pages"), top(s.top_paths));
  fill($("referrers"), top(s.top_referrers));
}

function showError(text) { $("error").textContent = text; $("error").hidden = false; }

// A key can also arrive in the URL fragment (`/#key=fzt_…`), which browsers never send
// to the server; it is moved into local storage and removed from the address bar.
const fromHash = location.hash.match(/^#key=(.+)$/);
if (fromHash) {
  localStorage.setItem(KEY, decodeURIComponent(fromHash[1]));
  history.replaceState(null, "", location.pathname);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(KEY, $("key").value.trim());
  refresh();
});
$("logout").addEventListener("click", () => { localStorage.removeItem(KEY); refresh(); });
refresh();
setInterval(refresh, 5000);
