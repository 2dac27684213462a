// Settings: the tracking snippet, password change, sessions and the audit log.
import { api, get, del } from "./api.js";
import { h, put, section, table, fmtTime, fmtAgo, status, copyButton } from "./ui.js";

const AUDIT_PAGE = 50;

// "Chrome 156 on Linux" from a user agent; the whole string stays in the tooltip.
function device(ua) {
  if (!ua) return "unknown";
  const browser = (ua.match(/(Edg|OPR|Firefox|Chrome|Chromium|Version)\/(\d+)/) || [])[0];
  const os = (ua.match(/Windows|Android|iPhone|iPad|Mac OS X|Linux|CrOS/) || [])[0];
  const name = browser ? browser.replace("/", " ").replace("Version", "Safari").replace("Edg", "Edge").replace("OPR", "Opera") : "";
  return h("span", { title: ua, text: name && os ? `${name} on ${os.replace("Mac OS X", "macOS")}` : ua.slice(0, 40) });
}

async function snippet() {
  const { sites } = await get("/api/sites");
  const choices = sites.filter((s) => s.name !== "404");
  const code = h("pre", { class: "snippet", id: "snippet" });
  const pick = h("select", { id: "snippet-site", onchange: () => show() }, choices.map((s) => h("option", { value: s.url, text: s.name, selected: s.name !== "root" && choices.length > 1 && s === choices.find((x) => x.name !== "root") })));
  const show = () => (code.textContent = `<script defer src="${pick.value}fazt.js"></script>`);
  if (choices.length) show();
  return section("Tracking snippet", "tracking", h("label", {}, "Site ", pick), code, copyButton(() => code.textContent, "Copy snippet"),
    h("p", { class: "hint", text: "Put it in each page's <head>. It sends pageviews (single-page apps too), clicks on elements marked data-fazt-event and window.fazt.track(type, {tags}). On a site fazt hosts, set FAZT_AUTO_PAGEVIEWS=off or each view counts twice." }));
}

function passwordForm(me) {
  const msg = status();
  const current = h("input", { type: "password", id: "pw-current", autocomplete: "current-password", required: true });
  const next = h("input", { type: "password", id: "pw-new", autocomplete: "new-password", minlength: 8, required: true });
  const again = h("input", { type: "password", id: "pw-again", autocomplete: "new-password", minlength: 8, required: true });
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    if (next.value !== again.value) return msg.fail(new Error("The two new passwords differ."));
    try {
      // A 401 here is a wrong current password, not a signed-out browser.
      await api("/api/password", { method: "POST", body: { current: current.value, new: next.value }, quiet401: true });
      form.reset();
      msg.ok("Password changed. Every other session of this account has ended.");
    } catch (err) { msg.fail(err.status === 401 ? new Error("The current password is wrong.") : err); }
  } },
  h("input", { type: "text", autocomplete: "username", value: me.username, hidden: true, readOnly: true }),
  h("label", {}, "Current password ", current), h("label", {}, "New password ", next), h("label", {}, "New password again ", again),
  h("button", { text: "Change password" }));
  return section("Password", "change-password", me.via === "session" ? [form, msg] : h("p", { class: "hint", text: "Signed in with an API key: use fazt user set-password NAME on the server." }));
}

async function sessions(box) {
  const msg = status();
  const { sessions: list } = await get("/api/sessions");
  box.replaceChildren(table([
    ["Device", (s) => device(s.device)],
    ["Address", (s) => s.ip, "hide-narrow"],
    ["Signed in", (s) => fmtTime(s.created_at)],
    ["Last seen", (s) => fmtAgo(s.last_seen)],
    ["Expires", (s) => fmtTime(s.expires_at), "hide-narrow"],
    ["", (s) => s.current ? h("span", { class: "pill ok", text: "this browser" })
      : h("button", { type: "button", class: "small danger", text: "Sign out", "data-revoke": s.id, onclick: async () => {
        try { await del("/api/sessions/" + encodeURIComponent(s.id)); await sessions(box); } catch (err) { msg.fail(err); }
      } })],
  ], list, "No sessions."), msg);
}

function audit() {
  const body = h("div");
  const pager = h("div", { class: "row" });
  const show = async (before) => {
    const q = new URLSearchParams({ limit: AUDIT_PAGE });
    if (before) q.set("before", before);
    const page = await get("/api/audit?" + q);
    body.replaceChildren(table([
      ["Time", (e) => fmtTime(e.at)],
      ["Who", (e) => e.actor],
      ["Action", (e) => e.action],
      ["Target", (e) => e.target],
      ["Outcome", (e) => h("span", { class: "pill " + (e.outcome === "ok" ? "ok" : "bad"), text: e.outcome })],
      ["Address", (e) => e.ip, "hide-narrow"],
    ], page.entries, "Nothing recorded yet."));
    put(pager.replaceChildren() || pager,
      before ? h("button", { type: "button", class: "secondary", text: "Newest", onclick: () => show(null) }) : null,
      page.next ? h("button", { type: "button", class: "secondary", text: "Older", onclick: () => show(page.next) }) : null);
  };
  return { box: section("Audit log", "audit", body, pager), show };
}

export async function render(root, { me }) {
  const sessionBox = h("div");
  const log = audit();
  put(root, h("h1", { text: "Settings" }),
    me.owner ? await snippet() : null,
    passwordForm(me),
    me.via === "session" ? section("Sessions", "sessions", sessionBox) : null,
    me.owner ? log.box : null);
  if (me.via === "session") await sessions(sessionBox);
  if (me.owner) await log.show(null);
}
