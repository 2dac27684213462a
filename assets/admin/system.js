// System: readiness, limits and where each came from, cache, writer, events, disk,
// memory, certificates and the vacuum button.
import { get, post } from "./api.js";
import { h, put, section, dl, table, fmtBytes, fmtNum, fmtDuration, fmtTime, status } from "./ui.js";
import { healthStrip } from "./overview.js";

const BYTE_LIMITS = new Set(["cache_bytes", "max_cached_file_bytes", "memory_limit_bytes", "sqlite_cache_bytes", "sqlite_mmap_bytes", "upload_ram_bytes"]);

function limits(l) {
  const rows = Object.entries(l).filter(([k]) => k !== "sources");
  return table([
    ["Limit", ([k]) => k.replace(/_/g, " ")],
    ["Value", ([k, v]) => (BYTE_LIMITS.has(k) ? fmtBytes(v) : typeof v === "number" ? fmtNum(v) : String(v)), "num"],
    ["Where it came from", ([k]) => (l.sources || {})[k], "hide-narrow"],
  ], rows);
}

function certificates(c) {
  return h("div", {},
    c.acme ? dl(Object.entries(c.acme).map(([k, v]) => [k.replace(/_/g, " "), typeof v === "object" ? JSON.stringify(v) : String(v)])) : h("p", { class: "hint", text: "ACME is off (no --acme-email)." }),
    table([
      ["Names", (x) => (x.names || x.domains || [x.name]).join(", ")],
      ["Expires", (x) => fmtTime(x.not_after || x.expires_at)],
      ["Source", (x) => x.source || x.issuer || x.kind],
    ], c.certificates, "No certificates (plain HTTP, or none issued yet)."));
}

export async function render(root) {
  const [health, certs] = await Promise.all([get("/api/system/health"), get("/api/certs").catch((e) => ({ error: e.message, certificates: [] }))]);
  const c = health.counters, k = health.cache, w = health.writer, ev = health.events, d = health.disk, p = health.process;
  const looked = k.hits + k.misses;
  const msg = status();
  const vacuum = h("button", { type: "button", id: "vacuum", text: "Vacuum the database", onclick: async () => {
    vacuum.disabled = true;
    try {
      const r = await post("/api/system/vacuum");
      msg.ok(`Vacuum done: ${fmtBytes(r.freed_bytes)} returned to the filesystem.`);
    } catch (err) { msg.fail(err); }
    vacuum.disabled = false;
  } });
  put(root, h("h1", { text: "System" }),
    healthStrip(health),
    health.reasons.length ? h("p", { class: "error", text: "Not ready: " + health.reasons.join("; ") }) : null,
    h("div", { class: "grid stack" },
      section("Server", "server", dl([
        ["version", health.version], ["uptime", fmtDuration(health.uptime_seconds)], ["status", health.status],
        ["connections open", fmtNum(c.connections_open)], ["requests 2xx / 4xx / 5xx", `${fmtNum(c.requests["2xx"])} / ${fmtNum(c.requests["4xx"])} / ${fmtNum(c.requests["5xx"])}`],
        ["shed (503)", fmtNum(c.shed_requests)], ["rejected connections", fmtNum(c.connections_rejected)],
      ])),
      section("Memory", "memory", dl([
        ["resident", fmtBytes(p.resident_memory_bytes)], ["limit", fmtBytes(health.limits.memory_limit_bytes)], ["open files", fmtNum(p.open_fds)],
      ])),
      section("Cache", "cache", dl([
        ["used", `${fmtBytes(k.bytes_used)} of ${fmtBytes(k.bytes_limit)}`], ["entries", fmtNum(k.entries)],
        ["hit ratio", looked ? Math.round((k.hits / looked) * 100) + " %" : "—"], ["hits / misses", `${fmtNum(k.hits)} / ${fmtNum(k.misses)}`],
        ["evictions", fmtNum(k.evictions)], ["pinned (dashboard)", fmtBytes(k.pinned_bytes)], ["streamed uncached", fmtBytes(k.streamed_bytes)],
      ])),
      section("Writer", "writer", dl([
        ["queue depth", fmtNum(w.queue_depth)], ["jobs done / failed", `${fmtNum(w.jobs_completed)} / ${fmtNum(w.jobs_failed)}`],
        ["refused (queue full)", fmtNum(w.rejected.queue_full)],
        ["event batches", fmtNum(ev.batches)], ["events committed", fmtNum(ev.committed)], ["event queue", fmtNum(ev.queue_depth)],
        ["events dropped", fmtNum(Object.values(ev.dropped).reduce((a, b) => a + b, 0))],
      ])),
      section("Disk", "disk", dl([
        ...Object.entries(d.used_ratio).map(([path, r]) => [path, `${Math.round(r * 100)} % used, ${fmtBytes(d.available_bytes[path])} free`]),
        ["refuses bulk writes at", Math.round(d.threshold_ratio * 100) + " %"],
        ["breaker", health.reserve === "present" ? "closed (reserve held)" : "open: " + health.reserve],
        ["refusals", fmtNum(d.refusals)],
      ]), vacuum, msg)),
    section("Limits", "limits", limits(health.limits)),
    section("Certificates", "certs", certs.error ? h("p", { class: "error", text: certs.error }) : certificates(certs)));
}
