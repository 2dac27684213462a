// DOM helpers, number and date formats, tables and the inline SVG charts. No HTML strings:
// everything the server sends is set as text, never parsed as markup.
const SVG = "http://www.w3.org/2000/svg";

// h("button", {class: "x", onclick: f}, "text", node, [more]): an element.
export function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (k in el && !tag.startsWith("svg:") && k !== "list") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  n = Number(n) || 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

export const fmtNum = (n) => (Number(n) || 0).toLocaleString("en-US");

export function fmtTime(unix) {
  if (!unix) return "never";
  const d = new Date(unix * 1000);
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

export function fmtAgo(unix) {
  if (!unix) return "never";
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

export function fmtDuration(s) {
  s = Math.round(s);
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${hr} h` : hr ? `${hr} h ${m} min` : m ? `${m} min` : `${s} s`;
}

// A section with a heading; `id` names it for the tests and for aria-labelledby.
export function section(title, id, ...body) {
  const hid = id + "-h";
  return h("section", { class: "card", id, "aria-labelledby": hid }, h("h2", { id: hid, text: title }), body);
}

// A key/value list.
export function dl(rows) {
  return h("dl", { class: "kv" }, rows.map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v === undefined || v === null ? "—" : v)]));
}

// A table: columns are [heading, row => cell, optional class]; an empty list says so.
export function table(columns, rows, empty = "Nothing yet.") {
  if (!rows.length) return h("p", { class: "empty", text: empty });
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([title, , cls]) => h("th", { scope: "col", class: cls, text: title })))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell, cls]) => {
      const v = cell(row);
      return h("td", { class: cls }, v === undefined || v === null ? "—" : v);
    })))),
  ));
}

// A ranked list of {value, count} with a bar for each share of the largest.
export function ranked(title, id, rows, empty = "None in this range.") {
  const max = Math.max(1, ...rows.map((r) => r.count));
  return section(title, id, rows.length ? h("ol", { class: "ranked" }, rows.map((r) =>
    h("li", {},
      h("span", { class: "bar" }, h("span", { class: "fill", "data-share": Math.round((r.count / max) * 100) })),
      h("span", { class: "label", text: r.value === "" ? "(none)" : r.value }),
      h("span", { class: "count num", text: fmtNum(r.count) })))) : h("p", { class: "empty", text: empty }));
}

// The CSP forbids inline styles, so widths are set from script through the CSSOM, which
// it allows.
export function applyShares(root) {
  for (const el of root.querySelectorAll("[data-share]")) el.style.width = el.dataset.share + "%";
}

export function copyButton(text, label = "Copy") {
  const btn = h("button", { type: "button", class: "small", text: label });
  btn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(typeof text === "function" ? text() : text);
      btn.textContent = "Copied";
    } catch {
      btn.textContent = "Select and copy by hand";
    }
    setTimeout(() => (btn.textContent = label), 2000);
  });
  return btn;
}

// A message line under a form: the server's message on a refusal, or what was done.
export function status() {
  const el = h("p", { class: "status", role: "status", "aria-live": "polite" });
  el.ok = (text) => { el.className = "status ok"; el.textContent = text; };
  el.fail = (err) => { el.className = "status error"; el.textContent = err.message || String(err); };
  el.clear = () => { el.textContent = ""; };
  return el;
}

// Fills the buckets the API left out (it lists only buckets with events) with zeros.
export function fillTimeline(stats) {
  const step = stats.bucket === "hour" ? 3600 : 86400;
  const byT = new Map(stats.timeline.map((p) => [p.t, p]));
  const start = Math.floor(stats.from / step) * step;
  const out = [];
  for (let t = start; t < stats.to; t += step) out.push(byT.get(t) || { t, events: 0, pageviews: 0, visitors: 0 });
  return out;
}

const bucketLabel = (t, bucket) => {
  const iso = new Date(t * 1000).toISOString();
  return bucket === "hour" ? iso.slice(0, 13).replace("T", " ") + ":00" : iso.slice(0, 10);
};

// The timeline: pageview bars with the visitors as a line, each bar titled with its
// numbers (a tooltip, and what a screen reader reads), the whole labelled by a summary.
export function timelineChart(stats, title) {
  const points = fillTimeline(stats);
  const W = 720, H = 180, pad = 24;
  const max = Math.max(1, ...points.map((p) => Math.max(p.pageviews, p.visitors)));
  const bw = (W - pad) / Math.max(1, points.length);
  const y = (v) => H - pad - (v / max) * (H - pad * 2);
  const t = stats.totals;
  const summary = `${title}: ${fmtNum(t.pageviews)} pageviews and ${fmtNum(t.visitors)} visitors from ${bucketLabel(stats.from, "day")} to ${bucketLabel(stats.to - 1, stats.bucket)}, by ${stats.bucket}; highest ${fmtNum(max)}.`;
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary, class: "chart", preserveAspectRatio: "none" },
    h("svg:title", { text: summary }),
    h("svg:line", { x1: pad, x2: W, y1: H - pad, y2: H - pad, class: "axis" }),
    h("svg:text", { x: 0, y: pad, class: "tick", text: fmtNum(max) }),
    h("svg:text", { x: 0, y: H - pad, class: "tick", text: "0" }),
    points.map((p, i) => h("svg:rect", {
      x: pad + i * bw + bw * 0.1, width: Math.max(1, bw * 0.8), y: y(p.pageviews), height: H - pad - y(p.pageviews),
      class: "bar",
    }, h("svg:title", { text: `${bucketLabel(p.t, stats.bucket)}: ${p.pageviews} pageviews, ${p.visitors} visitors, ${p.events} events` }))),
    h("svg:polyline", { class: "line", points: points.map((p, i) => `${pad + (i + 0.5) * bw},${y(p.visitors)}`).join(" ") }),
    h("svg:text", { x: pad, y: H - 6, class: "tick", text: bucketLabel(points[0] ? points[0].t : stats.from, stats.bucket) }),
    h("svg:text", { x: W, y: H - 6, class: "tick end", text: bucketLabel(points.length ? points[points.length - 1].t : stats.to, stats.bucket) }),
  );
  return h("figure", { class: "timeline" }, svg,
    h("figcaption", {}, h("span", { class: "key bars", text: "pageviews" }), " ", h("span", { class: "key line", text: "visitors" })));
}

export function sparkline(stats, label) {
  const points = fillTimeline(stats);
  const W = 120, H = 28;
  const max = Math.max(1, ...points.map((p) => p.pageviews));
  const dx = W / Math.max(1, points.length - 1);
  const coords = points.map((p, i) => `${(i * dx).toFixed(1)},${(H - 2 - (p.pageviews / max) * (H - 4)).toFixed(1)}`);
  return h("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "spark", role: "img", "aria-label": label },
    h("svg:title", { text: label }),
    h("svg:polyline", { points: coords.join(" ") }));
}

// Resolves with true when the user types `expected`; a modal <dialog> traps the focus.
export function confirmTyped(message, expected, action) {
  return new Promise((resolve) => {
    const input = h("input", { autocomplete: "off", spellcheck: false, "aria-describedby": "confirm-msg" });
    const ok = h("button", { class: "danger", disabled: true, text: action });
    input.addEventListener("input", () => (ok.disabled = input.value !== expected));
    const dialog = h("dialog", { class: "card", "aria-labelledby": "confirm-msg" },
      h("form", { method: "dialog" },
        h("p", { id: "confirm-msg", text: message }),
        h("label", {}, `Type ${expected} to confirm `, input),
        h("div", { class: "row" }, ok, h("button", { value: "cancel", class: "secondary", text: "Cancel" }))));
    ok.value = "ok";
    dialog.addEventListener("close", () => { dialog.remove(); resolve(dialog.returnValue === "ok"); });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

// root.append without the null/false placeholders of optional parts.
export function put(root, ...children) {
  root.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// A secret shown once: the value, a copy button and the warning.
export function shownOnce(label, value, id) {
  return h("div", { class: "secret", id, role: "status" },
    h("span", {}, h("strong", { text: label + " (shown once, copy it now): " }), h("code", { text: value })),
    copyButton(value));
}
