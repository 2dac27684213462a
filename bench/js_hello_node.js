// The Node.js side of bench/bench_js.sh: node:http answering every request with the same small
// JSON as the fazt handler (`respond({hello: "world"})` in api/main.js), one process, as Node runs
// by default. Prints "listening on http://127.0.0.1:PORT" once it accepts (PORT from argv[2],
// 0: any free port).
"use strict";
const http = require("node:http");

const server = http.createServer((req, res) => {
  const body = JSON.stringify({ hello: "world" });
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
});
server.keepAliveTimeout = 75000;
server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
