// The admin dashboard: signs in with a session cookie (HttpOnly: this script never sees
// it) and polls readiness.
"use strict";
const $ = (id) => document.getElementById(id);

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

function signedOut(show) {
  $("login").hidden = !show;
  $("dash").hidden = show;
}

async function refresh() {
  let res;
  try {
    res = await fetch("/api/system/health");
  } catch (e) {
    $("status").textContent = "unreachable";
    $("status").className = "pill error";
    return showError("fazt is not answering: " + e.message);
  }
  if (res.status === 401) return signedOut(true);
  if (!res.ok) return showError(await messageOf(res));
  signedOut(false);
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
  refreshStats();
  fill($("cache"), [
    ["used", fmtBytes(k.bytes_used || 0) + " of " + fmtBytes(k.bytes_limit || 0)],
    ["entries", k.entries], ["hits / misses", `${k.hits} / ${k.misses}`], ["evictions", k.evictions],
  ]);
}

async function refreshStats() {
  const res = await fetch("/api/stats?bucket=day");
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

async function messageOf(res) {
  const body = await res.json().catch(() => null);
  return (body && body.error && body.error.message) || "the server answered " + res.status;
}

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  if (!res.ok) throw new Error(await messageOf(res));
  return res.json();
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const me = await post("/api/login", {
      username: $("username").value.trim(),
      password: $("password").value,
      remember: $("remember").checked,
    });
    $("password").value = "";
    $("who").textContent = "Signed in as " + me.username + ".";
    $("error").hidden = true;
    refresh();
  } catch (err) {
    showError(err.message);
  }
});
$("logout").addEventListener("click", async () => {
  try { await post("/api/logout"); } catch (err) { showError(err.message); }
  refresh();
});
refresh();
setInterval(refresh, 5000);
