// The WebSocket clients (and the Node.js echo server) of bench/bench_ws.sh, on the npm package
// `ws` that the script installs into bench/node_modules. Every connection goes to 127.0.0.1.
// Results are printed as key=value lines on stdout; progress and errors go to stderr.
//
//   node ws_load.js fanout URL HOST CLIENTS SECONDS SIZE SOURCES
//       CLIENTS receivers and one more sender on the site HOST (Host header); once all are open
//       the sender sends one SIZE-byte text a second for SECONDS s, each carrying its send time;
//       every receiver notes the delivery latency (same process, same clock).
//   node ws_load.js idle URL HOST CLIENTS SOURCES MAX_SECONDS
//       opens CLIENTS connections (at most 256 handshakes in flight), prints "ready" with the
//       counts, then holds them (answering pings) until SIGTERM or MAX_SECONDS.
//   node ws_load.js echo URL HOSTS SECONDS SIZE
//       one client per host of HOSTS (comma list), each sending a SIZE-byte text and awaiting
//       its echo, again and again for SECONDS s: messages/s over all clients, and round-trip times.
//   node ws_load.js server
//       a plain `ws` echo server on a free port of 127.0.0.1 (each message back to its sender);
//       prints "listening on ws://127.0.0.1:PORT".
//
// SOURCES spreads the client side over source addresses 127.0.0.1..127.0.0.SOURCES, so more
// connections fit than one address has ephemeral ports.
"use strict";
const WebSocket = require("ws");

const [cmd, ...args] = process.argv.slice(2);

const now = () => performance.now();
const out = (key, value) => console.log(`${key}=${value}`);

// The value at quantile q of sorted numbers, in ms with two decimals.
function quantile(sorted, q) {
  if (!sorted.length) return "n/a";
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(2);
}

// Opens one client of HOST at URL from source address 127.0.0.(1 + i % sources).
function connect(url, host, i, sources) {
  return new WebSocket(url, {
    headers: { Host: host },
    localAddress: `127.0.0.${1 + (i % sources)}`,
    perMessageDeflate: false,
    handshakeTimeout: 30000,
    maxPayload: 1 << 20,
  });
}

// Opens COUNT clients, at most 256 handshakes at a time; resolves with {open, failed, first_error}.
function openMany(url, host, count, sources, onMessage) {
  const clients = [];
  let started = 0;
  let settled = 0;
  let failed = 0;
  let firstError = "";
  return new Promise((resolve) => {
    const next = () => {
      if (started >= count) return;
      const i = started++;
      const ws = connect(url, host, i, sources);
      let done = false;
      const settle = (ok, why) => {
        if (done) return;
        done = true;
        settled++;
        if (ok) clients.push(ws);
        else {
          failed++;
          if (!firstError) firstError = why;
        }
        if (settled === count) resolve({ clients, failed, firstError });
        else next();
      };
      ws.on("open", () => settle(true));
      ws.on("error", (e) => settle(false, String(e.message || e)));
      ws.on("unexpected-response", (_req, res) => settle(false, `HTTP ${res.statusCode}`));
      if (onMessage) ws.on("message", (data, isBinary) => onMessage(data, isBinary));
    };
    if (count === 0) resolve({ clients, failed, firstError });
    for (let k = 0; k < Math.min(256, count); k++) next();
  });
}

// CPU seconds (user + system) of process PID so far, or NaN.
function cpuSeconds(pid) {
  try {
    const fields = require("node:fs").readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fanout(url, host, clients, seconds, size, sources) {
  const latencies = [];
  // Per message, the earliest and the latest delivery: the first shows fazt's own delay, the
  // spread mostly this one client process working through CLIENTS deliveries in turn.
  const first = new Map();
  const last = new Map();
  let stray = 0;
  const onMessage = (data) => {
    const text = data.toString("latin1", 0, 48);
    const m = /^\{"t":([0-9.]+),"seq":([0-9]+),/.exec(text);
    if (!m) return stray++;
    const ms = now() - Number(m[1]);
    latencies.push(ms);
    if (!first.has(m[2])) first.set(m[2], ms);
    last.set(m[2], ms);
  };
  const t0 = now();
  const { clients: open, failed, firstError } = await openMany(url, host, clients, sources, onMessage);
  out("open", open.length);
  out("failed", failed);
  out("first_error", firstError || "none");
  out("connect_s", ((now() - t0) / 1000).toFixed(2));
  const [sender] = (await openMany(url, host, 1, 1)).clients;
  if (!sender) throw new Error("the sender could not connect");
  await sleep(500);
  // The server's CPU over the sending alone (SERVER_PID, when given), without the handshakes.
  const serverPid = Number(process.env.SERVER_PID || 0);
  const cpu0 = cpuSeconds(serverPid);
  let sent = 0;
  for (let s = 0; s < seconds; s++) {
    let msg = `{"t":${now().toFixed(3)},"seq":${s},"pad":"`;
    msg += "x".repeat(Math.max(0, size - msg.length - 2)) + '"}';
    sender.send(msg);
    sent++;
    await sleep(1000);
  }
  await sleep(1000);
  out("server_cpu_send_s", serverPid ? (cpuSeconds(serverPid) - cpu0).toFixed(2) : "n/a");
  latencies.sort((a, b) => a - b);
  out("sent", sent);
  out("expected", sent * open.length);
  out("delivered", latencies.length);
  out("stray", stray);
  out("p50_ms", quantile(latencies, 0.5));
  out("p99_ms", quantile(latencies, 0.99));
  out("max_ms", latencies.length ? latencies[latencies.length - 1].toFixed(2) : "n/a");
  const firsts = [...first.values()].sort((a, b) => a - b);
  const lasts = [...last.values()].sort((a, b) => a - b);
  out("first_p50_ms", quantile(firsts, 0.5));
  out("last_p50_ms", quantile(lasts, 0.5));
  out("closed_early", open.filter((ws) => ws.readyState !== WebSocket.OPEN).length);
  for (const ws of [...open, sender]) ws.terminate();
}

async function idle(url, host, clients, sources, maxSeconds) {
  const t0 = now();
  const { clients: open, failed, firstError } = await openMany(url, host, clients, sources);
  let closed = 0;
  for (const ws of open) ws.on("close", () => closed++);
  console.log(`ready open=${open.length} failed=${failed} connect_s=${((now() - t0) / 1000).toFixed(2)} first_error=${JSON.stringify(firstError || "none")}`);
  const stop = () => {
    console.log(`done closed_early=${closed}`);
    for (const ws of open) ws.terminate();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  setTimeout(stop, maxSeconds * 1000);
}

async function echo(url, hosts, seconds, size) {
  const payload = "e".repeat(size);
  const list = hosts.split(",");
  const clients = [];
  for (let i = 0; i < list.length; i++) {
    const { clients: [ws], firstError } = await openMany(url, list[i], 1, 1);
    if (!ws) throw new Error(`client of ${list[i]} could not connect: ${firstError}`);
    clients.push(ws);
  }
  const rtts = [];
  let count = 0;
  let mismatched = 0;
  let running = true;
  const end = now() + seconds * 1000;
  const loops = clients.map((ws) => new Promise((resolve) => {
    let sentAt = 0;
    const send = () => {
      if (!running || now() >= end) return resolve();
      sentAt = now();
      ws.send(payload);
    };
    ws.on("message", (data) => {
      if (data.length !== size) mismatched++;
      rtts.push(now() - sentAt);
      count++;
      send();
    });
    ws.on("close", () => resolve());
    send();
  }));
  const t0 = now();
  await Promise.all(loops);
  running = false;
  const secs = (now() - t0) / 1000;
  rtts.sort((a, b) => a - b);
  out("clients", clients.length);
  out("messages", count);
  out("msgs_s", (count / secs).toFixed(0));
  out("mismatched", mismatched);
  out("p50_ms", quantile(rtts, 0.5));
  out("p99_ms", quantile(rtts, 0.99));
  out("closed_early", clients.filter((ws) => ws.readyState !== WebSocket.OPEN).length);
  for (const ws of clients) ws.terminate();
}

function server() {
  const wss = new WebSocket.WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
  wss.on("listening", () => console.log(`listening on ws://127.0.0.1:${wss.address().port}`));
  process.on("SIGTERM", () => process.exit(0));
}

const int = (s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`not a count: ${s}`);
  return n;
};

const run = {
  fanout: () => fanout(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), int(args[5]) || 1),
  idle: () => idle(args[0], args[1], int(args[2]), int(args[3]) || 1, int(args[4])),
  echo: () => echo(args[0], args[1], int(args[2]), int(args[3])),
  server: async () => server(),
}[cmd];
if (!run) {
  console.error("usage: see the head of bench/ws_load.js");
  process.exit(2);
}
run().then(() => {
  if (cmd === "fanout" || cmd === "echo") process.exit(0);
}, (err) => {
  console.error(String(err && err.stack || err));
  process.exit(1);
});
