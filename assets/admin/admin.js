// The dashboard's entry: who is signed in, the navigation between views (in the URL's
// fragment, so a view can be bookmarked and the server needs no routes), the sign-in form
// and the banner shown while fazt does not answer.
import { api, get, post, onApi } from "./api.js";
import { h, applyShares } from "./ui.js";

// [route, label, module, owner only]
const VIEWS = [
  ["overview", "Overview", "./overview.js", true],
  ["analytics", "Analytics", "./analytics.js", true],
  ["sites", "Sites", "./sites.js", false],
  ["redirects", "Redirects", "./redirects.js", true],
  ["webhooks", "Webhooks", "./webhooks.js", true],
  ["keys", "Keys", "./keys.js", true],
  ["system", "System", "./system.js", true],
  ["settings", "Settings", "./settings.js", false],
];
const POLL_MS = 5000;
const $ = (id) => document.getElementById(id);
const state = { me: null, cleanup: null, offlineSince: 0 };

function banner(offline) {
  if (offline && !state.offlineSince) state.offlineSince = Date.now();
  if (!offline) state.offlineSince = 0;
  const b = $("banner");
  b.hidden = !offline;
  if (offline) {
    const at = new Date(state.offlineSince).toISOString().slice(11, 19);
    b.textContent = `fazt is not answering (since ${at} UTC). Retrying every ${POLL_MS / 1000} s…`;
  }
}

function showLogin() {
  state.me = null;
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  $("view").hidden = true;
  $("nav").hidden = true;
  $("me").hidden = true;
  $("login").hidden = false;
  $("username").focus();
}

function allowed() {
  return VIEWS.filter(([, , , ownerOnly]) => state.me.owner || !ownerOnly);
}

function showNav(current) {
  $("nav").replaceChildren(...allowed().map(([route, label]) =>
    h("a", { href: "#/" + route, "aria-current": route === current ? "page" : false, text: label })));
  $("nav").hidden = false;
  $("who").textContent = state.me.owner ? state.me.username : `${state.me.username} (${state.me.scope})`;
  $("me").hidden = false;
}

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  return { route: path || "", params: new URLSearchParams(query || "") };
}

let renderSeq = 0;
async function route() {
  if (!state.me) return;
  const { route: wanted, params } = parseHash();
  const views = allowed();
  const view = views.find(([r]) => r === wanted) || views[0];
  if (view[0] !== wanted) return location.replace("#/" + view[0]);
  showNav(view[0]);
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  const seq = ++renderSeq;
  const root = $("view");
  // A control that changed the URL (a range, a site) is drawn again: keep the focus on it.
  const focused = root.contains(document.activeElement) ? document.activeElement.id : "";
  root.replaceChildren();
  root.hidden = false;
  $("login").hidden = true;
  const mod = await import(view[2]);
  if (seq !== renderSeq) return;
  const container = h("div", { class: "view", "data-view": view[0], "data-hash": location.hash });
  root.replaceChildren(container);
  document.title = `${view[1]} · fazt admin`;
  try {
    state.cleanup = (await mod.render(container, { params, me: state.me, nav: navigate })) || null;
  } catch (err) {
    container.append(h("p", { class: "error", role: "alert", text: err.message }));
  }
  applyShares(container);
  container.dataset.ready = "1";
  const again = focused && document.getElementById(focused);
  if (again) again.focus();
  else if (document.activeElement === document.body) root.focus({ preventScroll: true });
}

// Changes the view's parameters (the URL) without a new history entry for each click.
function navigate(routeName, params) {
  const q = new URLSearchParams(params).toString();
  location.hash = "#/" + routeName + (q ? "?" + q : "");
}

async function whoAmI() {
  try {
    state.me = await get("/api/session");
  } catch (err) {
    if (err.status === 401) return showLogin();
    if (err.status === 0) return setTimeout(whoAmI, POLL_MS);
    throw err;
  }
  route();
}

async function signIn(e) {
  e.preventDefault();
  const msg = $("login-error");
  msg.hidden = true;
  $("signin").disabled = true;
  try {
    await api("/api/login", {
      method: "POST",
      quiet401: true,
      body: { username: $("username").value.trim(), password: $("password").value, remember: $("remember").checked },
    });
    $("password").value = "";
    await whoAmI();
  } catch (err) {
    msg.textContent = err.status === 429
      ? `Too many failed sign-ins. Try again in ${Math.ceil(err.retryAfter / 60)} min (${err.retryAfter} s).`
      : err.status === 401 ? "Wrong username or password." : err.message;
    msg.hidden = false;
    $("password").select();
  } finally {
    $("signin").disabled = false;
  }
}

async function signOut() {
  try { await post("/api/logout"); } catch { /* signed out either way */ }
  showLogin();
}

// Liveness every few seconds, from /health: it needs no session, so an open tab neither
// slides the session's idle expiry nor costs a session lookup. Whether the session is
// still alive is asked when the tab comes back into view (and by every API call).
async function poll() {
  try {
    const res = await fetch("/health", { cache: "no-store" });
    banner(!res.ok);
  } catch {
    banner(true);
  }
}

function visible() {
  if (document.hidden) return;
  if (state.me) get("/api/session").catch(() => {});
  poll();
}

onApi({ offline: banner, signedOut: showLogin });
$("login").addEventListener("submit", signIn);
$("logout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
setInterval(poll, POLL_MS);
document.addEventListener("visibilitychange", visible);
whoAmI();
