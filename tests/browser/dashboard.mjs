// Drives headless Chromium through the dashboard of a running fazt, as tests/integration/
// dashboard.rs set it up (sites, events, a scoped account), and checks what a user sees.
// Input: FAZT_DASHBOARD (JSON, below). Output: one line per step on stdout; "LOG" asks the
// harness to add a log line to blog's app (answer "logged" on stdin), "STOP" to stop the
// server (answer "stopped"). Exit 1 on the first failure.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { strict as assert } from "node:assert";
import { createHmac } from "node:crypto";

const cfg = JSON.parse(process.env.FAZT_DASHBOARD);
// { base, setup, password, scoped: {username, password}, port, shots, expect: {...}, folder }
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-proxy-server", "--disable-dev-shm-usage"];
const TIMEOUT = 10000;
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

const step = (name) => console.log("ok " + name);
const site = (name, path = "/") => `http://${name}.localhost:${cfg.port}${path}`;

// The text of a page of a hosted site, fetched by the browser (it resolves *.localhost
// to loopback by itself; the system resolver may not).
async function siteText(context, url) {
  const p = await context.newPage();
  const res = await p.goto(url);
  const body = (await res.text()).trim();
  await p.close();
  return body;
}

// Saves a screenshot of a view, checking on the way that each of its inputs is labelled.
async function shot(page, name) {
  const unlabelled = await page.$$eval("input, select, textarea", (els) => els
    .filter((el) => !el.hidden && el.type !== "hidden" && !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
    .map((el) => el.outerHTML));
  assert.deepEqual(unlabelled, [], `inputs without a label in ${name}`);
  await page.screenshot({ path: `${cfg.shots}/dashboard-${name}.png`, fullPage: true });
}

// Opens a view and waits until it is drawn for this very URL (not the view before it).
async function view(page, hash) {
  const url = cfg.base + "/#/" + hash;
  if (page.url() === url) await page.reload();
  else await page.goto(url);
  await page.waitForFunction((h) => {
    const v = document.querySelector(".view[data-ready]");
    return v && v.dataset.hash === h;
  }, "#/" + hash);
}

const text = async (page, sel) => (await page.locator(sel).first().textContent()).trim();
// The number of a tile (its .n), without thousands separators.
const num = async (page, sel) => Number((await text(page, sel + " .n")).replace(/[^0-9]/g, ""));

// The {value → count} of a ranked list, as drawn.
async function rankedOf(page, id) {
  return page.$$eval(`#${id} li`, (items) => Object.fromEntries(items.map((li) =>
    [li.querySelector(".label").textContent, Number(li.querySelector(".count").textContent.replace(/[^0-9]/g, ""))])));
}

async function login(page, username, password, remember = false) {
  await page.goto(cfg.base + "/");
  await page.fill("#username", username);
  await page.fill("#password", password);
  if (remember) await page.check("#remember");
  await page.click("#signin");
}

async function main() {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS });
  const owner = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  owner.setDefaultTimeout(TIMEOUT);
  const page = await owner.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // The admin CSP allows no inline script or style: a violation is a bug in the assets.
  owner.on("console", (m) => /Content Security Policy/i.test(m.text()) && errors.push(m.text()));

  // First-run setup through the printed link: the token leaves the address bar at once.
  await page.goto(cfg.setup);
  assert.equal(new URL(page.url()).hash, "", "the setup token stays in the address bar");
  await page.fill("#username", "owner");
  await page.fill("#password", cfg.password);
  await page.fill("#again", cfg.password);
  await shot(page, "setup");
  await page.click("button");
  await page.waitForSelector('.view[data-view="overview"][data-ready]');
  assert.equal(await text(page, "#who"), "owner");
  step("setup through the link signs the owner in");

  // Overview: the totals and each site's numbers are the events the harness sent.
  const e = cfg.expect;
  assert.equal(await num(page, "#total-pageviews"), e.pageviews, "overview pageviews");
  assert.equal(await num(page, "#total-events"), e.events, "overview events");
  assert.equal(await num(page, "#total-visitors"), e.visitors, "overview visitors");
  for (const [name, views] of Object.entries(e.sites)) {
    const row = page.locator(`tr[data-site="${name}"] td`);
    assert.equal(Number((await row.nth(2).textContent()).replace(/[^0-9]/g, "")), views, `overview pageviews of ${name}`);
  }
  assert.equal(await num(page, "#live-pageviews"), e.pageviews, "pageviews of the last 5 minutes");
  assert.ok(await page.locator("svg.chart[role=img]").getAttribute("aria-label"), "the chart has an accessible label");
  await shot(page, "overview");
  // The range by keyboard: an arrow key picks the next one, and the focus stays on it.
  await page.focus("#range-7d");
  await page.keyboard.press("ArrowRight");
  await page.waitForSelector('.view[data-view="overview"][data-ready] #range-30d:checked');
  await page.waitForFunction(() => document.activeElement.id === "range-30d");
  assert.equal(await num(page, "#total-pageviews"), e.pageviews, "overview pageviews over 30 days");
  step("overview shows the events sent");

  // Analytics of one site: each number equals /api/stats, and is the number sent.
  await view(page, "analytics?site=blog&range=24h");
  const stats = await page.evaluate(async () => (await fetch(`/api/stats?site=blog&bucket=hour&top=10&from=${Math.floor(Date.now() / 1000) - 86400}`)).json());
  assert.equal(await num(page, "#stat-pageviews"), stats.totals.pageviews);
  assert.equal(await num(page, "#stat-events"), stats.totals.events);
  assert.equal(await num(page, "#stat-visitors"), stats.totals.visitors);
  assert.equal(stats.totals.pageviews, e.sites.blog, "blog pageviews");
  assert.deepEqual(await rankedOf(page, "top-pages"), Object.fromEntries(stats.top_paths.map((r) => [r.value, r.count])));
  assert.deepEqual(await rankedOf(page, "top-pages"), e.blog_paths);
  assert.deepEqual(await rankedOf(page, "event-types"), Object.fromEntries(stats.event_types.map((r) => [r.value, r.count])));
  assert.deepEqual(await rankedOf(page, "tags"), e.blog_tags);
  assert.deepEqual(await rankedOf(page, "referrers"), e.blog_referrers);
  assert.deepEqual(await rankedOf(page, "campaigns"), e.blog_campaigns);
  assert.deepEqual(await rankedOf(page, "redirect-clicks"), e.blog_redirects);
  assert.deepEqual(await rankedOf(page, "redirect-clicks"), Object.fromEntries(stats.redirect_clicks.map((r) => [r.value, r.count])));
  assert.deepEqual(await rankedOf(page, "not-found"), e.blog_404s);
  assert.equal(await page.locator("#events tbody tr").count(), Math.min(25, stats.totals.events));
  await shot(page, "analytics");
  // Keyset paging: "Older" shows the next page of events.
  if (stats.totals.events > 25) {
    const first = await text(page, "#events tbody tr");
    await page.click("#older");
    await page.waitForFunction((f) => document.querySelector("#events tbody tr").textContent.trim() !== f, first);
      assert.equal(await page.locator("#events tbody tr").count(), Math.min(25, stats.totals.events - 25));
  }
  // A custom range, yesterday and today (the events are minutes old, even at midnight),
  // shows the same numbers.
  const day = (back) => new Date(Date.now() - back * 86400000).toISOString().slice(0, 10);
  await view(page, `analytics?site=blog&range=custom&from=${day(1)}&to=${day(0)}`);
  assert.equal(await num(page, "#stat-pageviews"), e.sites.blog, "pageviews of a custom range");
  assert.equal(await num(page, "#stat-events"), stats.totals.events, "events of a custom range");
  step("analytics numbers equal /api/stats and the events sent");

  // Sites: roll blog back to its first deployment; the site serves the old page.
  await view(page, "sites");
  await page.click('[data-deployments="blog"]');
  await page.waitForSelector("[data-rollback]");
  await shot(page, "sites");
  const older = await page.locator("[data-rollback]").last().getAttribute("data-rollback");
  await page.click(`[data-rollback="${older}"]`);
  await page.waitForSelector(`[data-rollback]:not([data-rollback="${older}"])`);
  assert.equal(await siteText(owner, site("blog")), e.blog_v1, "blog serves its first deployment after the rollback");
  step("rollback from the Sites view");

  // The site's app: its log lines, newest last, refreshed on demand; its environment, where
  // a value is set and replaced but never shown back.
  const logLines = () => page.$$eval("#logs tbody tr", (rows) => rows.map((r) => r.cells[2].textContent));
  assert.deepEqual(await logLines(), e.blog_logs, "the logs of blog, oldest first");
  console.log("LOG");
  assert.equal((await lines.next()).value, "logged");
  await page.click("#logs-refresh");
  await page.waitForFunction((n) => document.querySelectorAll("#logs tbody tr").length === n, e.blog_logs.length + 1);
  assert.equal((await logLines()).at(-1), "written after the view opened", "the newest line comes last");
  const secretValue = "dashboard-secret-value";
  for (const value of ["first-value", secretValue]) {
    await page.fill("#env-key", "API_TOKEN");
    await page.fill("#env-value", value);
    await page.click("#env-form button");
    await page.waitForSelector(`#env .status.ok >> text=/API_TOKEN set \\(${value.length} bytes\\)/`);
  }
  assert.match(await text(page, '#env tr:has([data-env-delete="API_TOKEN"])'), new RegExp(`API_TOKEN${secretValue.length} bytes`));
  assert.equal(await page.inputValue("#env-value"), "", "the form is cleared");
  assert.ok(!(await page.content()).includes(secretValue), "the value is not shown back");
  await shot(page, "sites-app");
  page.once("dialog", (d) => d.accept());
  await page.click('[data-env-delete="API_TOKEN"]');
  await page.waitForSelector("#env .empty");
  step("a site's logs and environment in the Sites view");

  // Delete asks for the name typed.
  await page.click('[data-delete="shop"]');
  await page.fill("dialog input", "sho");
  assert.ok(await page.locator("dialog button.danger").isDisabled(), "delete enabled before the name is typed");
  await shot(page, "sites-delete");
  await page.fill("dialog input", "shop");
  await page.click("dialog button.danger");
  await page.waitForFunction(() => !document.querySelector('[data-delete="shop"]'));
  step("delete with the name typed");

  // Deploy a folder with the folder picker; a drop goes through the same zip and upload.
  await page.fill("#deploy-site", "fresh");
  await page.setInputFiles("#deploy-dir", cfg.folder);
  await page.waitForSelector("#deploy .status.ok >> text=/deployed/");
  assert.equal(await page.locator("#deploy-progress").evaluate((p) => p.value), 1);
  await page.waitForSelector('[data-deployments="fresh"]');
  await shot(page, "deploy");
  assert.equal(await siteText(owner, site("fresh")), e.fresh_index);
  assert.equal(await siteText(owner, site("fresh", "/sub/page.html")), e.fresh_page);
  step("folder deploy from the Sites view, with its progress bar");

  // A zip dropped on the page (made by the dashboard's own zip writer) deploys too.
  await page.evaluate(async () => {
    const { makeZip } = await import("/zip.js");
    const zip = await makeZip([{ path: "index.html", file: new Blob(["<h1>dropped</h1>".repeat(20)]) }]);
    const dt = new DataTransfer();
    dt.items.add(new File([zip], "site.zip", { type: "application/zip" }));
    const drop = document.getElementById("drop");
    drop.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
    drop.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await page.waitForSelector("#deploy .status.ok >> text=/deployment 7/");
  assert.equal(await siteText(owner, site("fresh")), "<h1>dropped</h1>".repeat(20));
  step("a zip dropped on the Sites view deploys");

  // Keys: a new key is shown once, works, and is refused once revoked.
  await view(page, "keys");
  // A refused action shows the server's own message.
  await page.fill("#key-name", "bad");
  await page.fill("#key-scope", "everything");
  await page.click("#create-key button");
  await page.waitForSelector("#create-key .status.error");
  assert.match(await text(page, "#create-key .status"), /scope/, "the server's message for a bad scope");
  await page.fill("#key-name", "ci");
  await page.fill("#key-scope", "deploy:blog");
  await page.click("#create-key button");
  const token = await text(page, "#new-key-token code");
  assert.match(token, /^fzt_/);
  await shot(page, "keys");
  const withKey = (t) => fetch(cfg.base + "/api/sites", { headers: { Authorization: "Bearer " + t } });
  assert.equal((await withKey(token)).status, 200, "the new key works");
  await view(page, "keys");
  assert.ok(!(await page.content()).includes(token), "the key is shown only once");
  page.once("dialog", (d) => d.accept());
  const id = token.split("_")[1];
  await page.click(`[data-revoke="${id}"]`);
  await page.waitForFunction((i) => !document.querySelector(`[data-revoke="${i}"]`), id);
  assert.equal((await withKey(token)).status, 401, "the revoked key is refused");
  step("key created, shown once, revoked");

  // A short link made in the UI, followed by the browser.
  await view(page, "redirects");
  await page.fill("#redirect-slug", "about");
  await page.fill("#redirect-url", site("blog", "/about.html"));
  await page.fill("#redirect-tags", "ui");
  await page.click("#redirect-form button");
  await page.waitForSelector('[data-delete="about"]');
  await shot(page, "redirects");
  const visitor = await owner.newPage();
  await visitor.goto(site("blog", "/r/about"));
  assert.equal(visitor.url(), site("blog", "/about.html"), "the short link leads to its target");
  await visitor.close();
  step("redirect created in the UI and followed");

  await view(page, "webhooks");
  await page.fill("#webhook-endpoint", "deploys");
  await page.click("text=Generate secret");
  await page.click("#webhook-form button >> text=Save webhook");
  await page.waitForSelector("#webhook-secret-shown");
  // A delivery signed with the secret shown once counts as the endpoint's last delivery.
  const secret = await text(page, "#webhook-secret-shown code");
  const payload = JSON.stringify({ deployed: true });
  const signature = createHmac("sha256", secret).update(payload).digest("hex");
  const delivered = await fetch(cfg.base + "/webhook/deploys", { method: "POST", body: payload, headers: { "X-Webhook-Signature": signature } });
  assert.equal(delivered.status, 200, "a signed delivery");
  const cells = page.locator('tr:has([data-delete="deploys"]) td');
  const deliveryRow = () => cells.nth(5).textContent();
  for (let i = 0; (await deliveryRow()) === "never"; i++) {
    assert.ok(i < 20, "the delivery never showed");
    await page.waitForTimeout(250);
    await view(page, "webhooks");
  }
  assert.match(await deliveryRow(), /s ago/);
  assert.equal(await cells.nth(4).textContent(), "1", "deliveries in 30 days");
  await shot(page, "webhooks");
  await view(page, "system");
  await page.click("#vacuum");
  await page.waitForSelector("#disk .status.ok");
  await shot(page, "system");
  await view(page, "settings");
  await page.waitForSelector("#audit tbody tr");
  assert.match(await text(page, "#snippet"), /fazt\.js/);
  // The audit log lists what was just done here, by whom.
  const audit = await page.$$eval("#audit tbody tr", (rows) => rows.map((r) => [...r.cells].slice(1, 5).map((c) => c.textContent).join(" ")));
  for (const line of ["user owner key.create ci ok", "user owner key.delete", "user owner site.rollback blog ok", "user owner site.env.update blog/API_TOKEN ok", "user owner site.env.delete blog/API_TOKEN ok", "user owner site.delete shop ok", "user owner redirect.create about ok", "user owner deploy fresh", "user owner setup — ok"]) {
    assert.ok(audit.some((a) => a.startsWith(line)), `audit log without "${line}": ${JSON.stringify(audit)}`);
  }
  await shot(page, "settings");
  step("webhook with a secret shown once, its delivery; system and settings views drawn");

  // A state-changing request with the session cookie from another origin is refused.
  const cross = await owner.request.post(cfg.base + "/api/keys", {
    headers: { Origin: site("evil"), "Content-Type": "application/json" },
    data: { name: "stolen", scope: "owner" },
  });
  assert.equal(cross.status(), 403, "cross-origin POST with the cookie");
  const keys = await page.evaluate(async () => (await fetch("/api/keys")).json());
  assert.ok(!keys.keys.some((k) => k.name === "stolen"));
  step("cross-origin POST with the session cookie refused");

  // Phone width and dark mode: the overview still fits.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark", storageState: await owner.storageState() });
  const small = await phone.newPage();
  await small.goto(cfg.base + "/#/overview");
  await small.waitForSelector('.view[data-ready]');
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the overview is ${overflow}px wider than a phone`);
  await shot(small, "overview-phone-dark");
  await phone.close();
  step("readable on a phone, dark mode");

  // Logout: the cookie the browser had is dead on the server too.
  const [cookie] = (await owner.cookies()).filter((c) => c.name === "fazt_session");
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict", "fazt_session is HttpOnly, SameSite=Strict");
  await page.click("#logout");
  await page.waitForSelector("#login:not([hidden])");
  const replay = await fetch(cfg.base + "/api/session", { headers: { Cookie: `fazt_session=${cookie.value}` } });
  assert.equal(replay.status, 401, "the old session cookie after logout");
  step("logout kills the session server-side");

  // A wrong password, then the right one.
  await login(page, "owner", "not the password");
  await page.waitForSelector("#login-error:not([hidden])");
  assert.equal(await text(page, "#login-error"), "Wrong username or password.");
  await shot(page, "login-error");
  await page.fill("#password", cfg.password);
  await page.press("#password", "Enter");
  await page.waitForSelector('.view[data-view="overview"][data-ready]');
  step("wrong password, then the right one (Enter submits)");

  // Another browser, "remember me": a 30-day cookie. Revoked from Settings, it gets the
  // sign-in form at its next request.
  const second = await browser.newContext();
  const other2 = await second.newPage();
  await login(other2, "owner", cfg.password, true);
  await other2.waitForSelector('.view[data-view="overview"][data-ready]');
  const [remembered] = (await second.cookies()).filter((c) => c.name === "fazt_session");
  assert.ok(remembered.expires > Date.now() / 1000 + 29 * 86400, `remember me: the cookie expires at ${remembered.expires}`);
  await view(page, "settings");
  assert.equal(await page.locator("#sessions tbody tr").count(), 2, "two sessions listed");
  await page.click("#sessions [data-revoke]");
  await page.waitForFunction(() => document.querySelectorAll("#sessions tbody tr").length === 1);
  await other2.goto(cfg.base + "/#/keys");
  await other2.waitForSelector("#login:not([hidden])");
  await second.close();
  step("remember me; a session revoked from Settings is signed out");

  // Password change: a wrong current password is refused (and counts as a failed login),
  // the right one changes it; the old password no longer signs in, the new one does.
  const newPassword = cfg.password + " 2";
  await page.fill("#pw-current", "not it");
  await page.fill("#pw-new", newPassword);
  await page.fill("#pw-again", newPassword);
  await page.click("#change-password button");
  await page.waitForSelector("#change-password .status.error");
  assert.equal(await text(page, "#change-password .status"), "The current password is wrong.");
  await page.fill("#pw-current", cfg.password);
  await page.click("#change-password button");
  await page.waitForSelector("#change-password .status.ok");
  const signIn = (password) => fetch(cfg.base + "/api/login", {
    method: "POST", headers: { "Content-Type": "application/json", Origin: cfg.base },
    body: JSON.stringify({ username: "owner", password }),
  });
  assert.equal((await signIn(newPassword)).status, 200, "the new password signs in");
  await view(page, "settings");
  step("password changed from Settings");

  // A scoped account sees its site only.
  const scoped = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const sp = await scoped.newPage();
  await login(sp, cfg.scoped.username, cfg.scoped.password);
  await sp.waitForSelector('.view[data-view="sites"][data-ready]');
  const nav = await sp.$$eval("#nav a", (as) => as.map((a) => a.textContent));
  assert.deepEqual(nav, ["Sites", "Settings"]);
  const listed = await sp.$$eval("#site-list tbody tr td:first-child", (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(listed, ["blog"]);
  await shot(sp, "scoped");
  await scoped.close();
  step("a scoped session sees only its site");

  // The rate limit: 5 failures from this address (two above), then 429 with the wait.
  const other = await browser.newContext();
  const lp = await other.newPage();
  let failures = 2;
  for (;;) {
    await login(lp, "owner", "wrong " + failures);
    await lp.waitForSelector("#login-error:not([hidden])");
    const msg = await text(lp, "#login-error");
    if (msg.startsWith("Too many")) {
      assert.match(msg, /Try again in \d+ min \(\d+ s\)/);
      break;
    }
    failures++;
    assert.ok(failures <= 5, "no 429 after 5 failures");
  }
  assert.equal(failures, 5, "429 came before the 5th failure");
  await shot(lp, "login-locked");
  await other.close();
  step("429 after 5 failed logins, with the wait");

  // The server stops: the banner shows.
  console.log("STOP");
  assert.equal((await lines.next()).value, "stopped");
  await page.waitForSelector("#banner:not([hidden])", { timeout: 15000 });
  assert.match(await text(page, "#banner"), /not answering/);
  await shot(page, "banner");
  step("the server stopped: the banner shows");

  assert.deepEqual(errors, [], "script errors or CSP violations in the page");
  await browser.close();
  console.log("DONE");
}

main().then(() => process.exit(0), (err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
