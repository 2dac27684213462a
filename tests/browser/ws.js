// Drives headless Chromium (Debian's, through playwright-core) against the WebSocket hub of a
// running fazt, as tests/integration/ws_browser.rs set it up: sites "chat" and "other" each
// serve a page that opens `ws://<host>/ws`, lists what it receives, and exposes sendText /
// sendBinary. Two pages in two contexts (two separate browser profiles) on chat, one on other.
// Input: FAZT_WS_BROWSER (JSON: {port, shots}). Output: one line per step on stdout, then
// "DONE". Exit 1 on the first failure.
import { chromium } from "playwright-core";
import { strict as assert } from "node:assert";

const cfg = JSON.parse(process.env.FAZT_WS_BROWSER);
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-proxy-server", "--disable-dev-shm-usage"];
const TIMEOUT = 10000;
// Bytes that are no valid UTF-8 (0xff, 0xfe, a lone continuation byte): only a binary
// frame carries them unchanged.
const BINARY = [0, 1, 2, 0xff, 0xfe, 0x80, 65];

const step = (name) => console.log("ok " + name);
// Chromium resolves every *.localhost name to loopback by itself.
const site = (name) => `http://${name}.localhost:${cfg.port}/`;

// A page of `name` in its own context, once its socket is open.
async function open(browser, name) {
  const context = await browser.newContext({ viewport: { width: 520, height: 360 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(site(name));
  await page.waitForSelector("#state[data-state=open]");
  return { page, errors };
}

// The messages a page has listed so far, as {kind, text}.
const received = (page) => page.$$eval("#log li", (items) => items.map((li) => ({ kind: li.className, text: li.textContent })));

// Waits until the page lists a message of that kind and text.
async function waitFor(page, kind, text) {
  await page.waitForFunction(([k, t]) => [...document.querySelectorAll("#log li")]
    .some((li) => li.className === k && li.textContent === t), [kind, text]);
}

// Both pages side by side in one picture.
async function sideBySide(browser, pages, path) {
  const shots = await Promise.all(pages.map((p) => p.screenshot()));
  const context = await browser.newContext({ viewport: { width: 1080, height: 400 } });
  const page = await context.newPage();
  const imgs = shots.map((b, i) => `<figure><figcaption>page ${"AB"[i]}</figcaption>` +
    `<img src="data:image/png;base64,${b.toString("base64")}"></figure>`).join("");
  await page.setContent(`<body style="display:flex;gap:16px;margin:8px;font:14px sans-serif">${imgs}</body>`);
  await page.screenshot({ path, fullPage: true });
  await context.close();
}

async function main() {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS });
  const a = await open(browser, "chat");
  const b = await open(browser, "chat");
  const c = await open(browser, "other");
  step("three pages opened their sockets");

  await a.page.evaluate(() => window.sendText("hello from A"));
  await waitFor(a.page, "text", "hello from A");
  await waitFor(b.page, "text", "hello from A");
  step("a text from page A reaches page A (echo) and page B");

  await b.page.evaluate((bytes) => window.sendBinary(bytes), BINARY);
  const shown = "binary " + BINARY.join(",");
  await waitFor(a.page, "binary", shown);
  await waitFor(b.page, "binary", shown);
  step("a binary ArrayBuffer from page B reaches page A byte for byte");

  // Another site's hub: its page gets its own echo and nothing of chat's; chat's pages
  // get nothing of it (checked after a later chat message made the round trip).
  await c.page.evaluate(() => window.sendText("hello from C"));
  await waitFor(c.page, "text", "hello from C");
  await a.page.evaluate(() => window.sendText("last from A"));
  await waitFor(a.page, "text", "last from A");
  await waitFor(b.page, "text", "last from A");
  assert.deepEqual(await received(c.page), [{ kind: "text", text: "hello from C" }], "other's page");
  const expected = [{ kind: "text", text: "hello from A" }, { kind: "binary", text: shown }, { kind: "text", text: "last from A" }];
  assert.deepEqual(await received(a.page), expected, "page A, in order");
  assert.deepEqual(await received(b.page), expected, "page B, in order");
  step("sites are separate hubs and each page got every message once, in order");

  await sideBySide(browser, [a.page, b.page], `${cfg.shots}/ws-two-pages.png`);
  for (const p of [a, b, c]) assert.deepEqual(p.errors, [], "script errors in a page");
  await browser.close();
  console.log("DONE");
}

main().then(() => process.exit(0), (err) => {
  console.log("FAILED " + (err && err.stack || err));
  process.exit(1);
});
