// The date ranges the analytics views offer, and the /api/stats query each one means.
import { h } from "./ui.js";

// [id, label, seconds back, bucket]
export const RANGES = [
  ["24h", "24 hours", 86400, "hour"],
  ["7d", "7 days", 7 * 86400, "day"],
  ["30d", "30 days", 30 * 86400, "day"],
  ["12m", "12 months", 365 * 86400, "day"],
];

// The query string of /api/stats for a range id (or "custom" with from/to dates), a bucket
// and an optional site.
export function statsQuery({ range = "7d", from, to, bucket, site, top }) {
  const q = new URLSearchParams();
  if (range === "custom" && from) {
    q.set("from", from);
    // `to` is exclusive and a date means its midnight: the day after includes `to` itself.
    if (to) q.set("to", new Date(Date.parse(to) + 86400000).toISOString().slice(0, 10));
  } else {
    const [, , back, defaultBucket] = RANGES.find(([id]) => id === range) || RANGES[1];
    q.set("from", Math.floor(Date.now() / 1000) - back);
    bucket = bucket || defaultBucket;
  }
  q.set("bucket", bucket || "day");
  if (site) q.set("site", site);
  if (top) q.set("top", top);
  return q.toString();
}

// Radio buttons that look like a segmented control (arrow keys move between them).
export function rangeControl(current, onChange, { custom = false } = {}) {
  const options = custom ? [...RANGES, ["custom", "Custom"]] : RANGES;
  return h("fieldset", { class: "segmented", id: "range" },
    h("legend", { text: "Range" }),
    options.map(([id, label]) => h("label", {},
      h("input", { type: "radio", name: "range", id: "range-" + id, value: id, checked: id === current, onchange: () => onChange(id) }),
      label)));
}
