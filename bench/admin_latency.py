#!/usr/bin/env python3
"""The admin clients of bench/admin_latency.sh: the health sampler, the admin writer, the report.

    admin_latency.py health --port P --token T --stop FILE --samples TSV [--interval-ms 2]
        GET /api/system/health on one keep-alive connection (TCP_NODELAY), one request at a time,
        until FILE exists or --max-seconds (--ready FILE2: created once the first answer came). Each request is timed from just before send() to the
        last byte of the answer; --interval-ms paces them (one starts at most every interval; a
        slow answer is never followed by a burst). Every sample goes to TSV (wall-clock start,
        seconds, status). Prints: n, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, mean_ms, statuses,
        errors, reconnects, elapsed_s.
    admin_latency.py writes --port P --token T --stop FILE [--interval-ms 50] [--prefix bench]
        Admin writes on one keep-alive connection until FILE exists or --max-seconds, alternating
        POST /api/redirects {"slug","url","tags"} and POST /api/keys {"name","scope"} (fresh names,
        so every one is a real insert). Prints, per route (redirects, keys): sent, ok (2xx), non2xx,
        statuses, errors, p50_ms, p99_ms, max_ms.
    admin_latency.py slowest --samples TSV --deploys TSV [--top 5] [--stall-ms 50]
        The slowest health samples with the deploy in flight when each started (deploys TSV: index,
        wall-clock start, wall-clock end, HTTP status). Prints: slowest=<t_s>:<ms>ms:<deploy>,...
        (t_s counted from the first sample); the samples started while a deploy was in flight vs
        between deploys: during_n, during_p99_ms, during_max_ms, between_n, between_max_ms; and the
        answers slower than --stall-ms: stalls (count), stalled_s (their total time), span_s (first
        sample to last answer). A paced sampler takes one sample per stall where it would have
        taken hundreds, so percentiles understate stalls; stalled_s / span_s says how long health
        could not answer.

Every request goes to 127.0.0.1 and has a socket timeout; a request that fails (timeout, reset)
is counted under errors and the connection is opened again.
"""

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import ResponseParser, connect, read_response  # noqa: E402
from latency import percentile  # noqa: E402
from util import fmt_counts  # noqa: E402
from vfs_rss import exit_on_signals  # noqa: E402


def ms(seconds):
    return f"{seconds * 1000:.3f}" if seconds == seconds else "nan"  # NaN when there is no sample


def build(method, path, token, body=None):
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", f"Authorization: Bearer {token}"]
    payload = b""
    if body is not None:
        payload = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class KeepAlive:
    """One keep-alive connection; reopened (and counted) when the server closes it or a request fails."""

    def __init__(self, addr, port, timeout):
        self.addr, self.port, self.timeout = addr, port, timeout
        self.sock = None
        self.parser = ResponseParser()
        self.reconnects = 0

    def request(self, raw):
        """Sends raw, returns (seconds, status); raises OSError/ValueError after dropping the socket."""
        if self.sock is None:
            self.sock = connect(self.addr, self.port, self.timeout)
            self.parser = ResponseParser()
        try:
            t0 = time.perf_counter()
            self.sock.sendall(raw)
            read_response(self.sock, self.parser)
            dt = time.perf_counter() - t0
        except (OSError, ValueError):
            self.drop()
            raise
        status = self.parser.status
        if self.parser.close:
            self.drop()
            self.reconnects += 1
        else:
            self.parser.next_message()
        return dt, status

    def drop(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None


class Pacer:
    """One start at most every interval; behind schedule, it continues from now (never bursts)."""

    def __init__(self, interval_ms):
        self.interval = interval_ms / 1000.0
        self.next_at = time.perf_counter()

    def wait(self):
        if self.interval <= 0:
            return
        now = time.perf_counter()
        if now < self.next_at:
            time.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now) + self.interval


def running(args, deadline):
    return time.perf_counter() < deadline and not os.path.exists(args.stop)


def mark_ready(args):
    """Creates --ready (once), so the script starts deploying only once this client is answered."""
    if args.ready and not os.path.exists(args.ready):
        open(args.ready, "w").close()


def health(args):
    exit_on_signals()
    conn = KeepAlive(args.addr, args.port, args.timeout)
    raw = build("GET", "/api/system/health", args.token)
    durations, statuses, errors = [], {}, 0
    start = time.perf_counter()
    deadline = start + args.max_seconds
    pacer = Pacer(args.interval_ms)
    with open(args.samples, "w") as out:
        while running(args, deadline):
            pacer.wait()
            wall = time.time()
            try:
                dt, status = conn.request(raw)
            except (OSError, ValueError) as e:
                errors += 1
                if errors <= 3:
                    print(f"admin_latency.py health: request error: {e!r}", file=sys.stderr)
                out.write(f"{wall:.6f}\tnan\terror\n")
                continue
            durations.append(dt)
            statuses[status] = statuses.get(status, 0) + 1
            out.write(f"{wall:.6f}\t{dt:.6f}\t{status}\n")
            mark_ready(args)
    conn.drop()
    s = sorted(durations)
    print(f"n={len(s)}")
    for p in (50, 90, 99, 99.9):
        print(f"p{str(p).replace('.', '')}_ms={ms(percentile(s, p))}")
    print(f"max_ms={ms(s[-1]) if s else 'nan'}")
    print(f"mean_ms={ms(sum(s) / len(s)) if s else 'nan'}")
    print(f"statuses={fmt_counts(statuses)}")
    print(f"errors={errors}")
    print(f"reconnects={conn.reconnects}")
    print(f"elapsed_s={time.perf_counter() - start:.2f}")
    return 0 if s else 1


def write_body(route, i, prefix):
    if route == "redirects":
        return {"slug": f"{prefix}-r{i}", "url": f"https://example.com/{prefix}/{i}", "tags": "bench"}
    return {"name": f"{prefix}-k{i}", "scope": f"deploy:{prefix}"}


def writes(args):
    exit_on_signals()
    conn = KeepAlive(args.addr, args.port, args.timeout)
    routes = ("redirects", "keys")
    stats = {r: {"durations": [], "statuses": {}, "errors": 0} for r in routes}
    deadline = time.perf_counter() + args.max_seconds
    pacer = Pacer(args.interval_ms)
    i = 0
    while running(args, deadline):
        pacer.wait()
        route = routes[i % 2]
        st = stats[route]
        try:
            dt, status = conn.request(build("POST", f"/api/{route}", args.token, write_body(route, i, args.prefix)))
        except (OSError, ValueError) as e:
            st["errors"] += 1
            if st["errors"] <= 3:
                print(f"admin_latency.py writes: POST /api/{route} error: {e!r}", file=sys.stderr)
        else:
            st["durations"].append(dt)
            st["statuses"][status] = st["statuses"].get(status, 0) + 1
            mark_ready(args)
        i += 1
    conn.drop()
    for route in routes:
        st = stats[route]
        s = sorted(st["durations"])
        ok = sum(n for code, n in st["statuses"].items() if 200 <= code < 300)
        print(f"{route}.sent={len(s) + st['errors']}")
        print(f"{route}.ok={ok}")
        print(f"{route}.non2xx={len(s) - ok}")
        print(f"{route}.statuses={fmt_counts(st['statuses'])}")
        print(f"{route}.errors={st['errors']}")
        print(f"{route}.p50_ms={ms(percentile(s, 50))}")
        print(f"{route}.p99_ms={ms(percentile(s, 99))}")
        print(f"{route}.max_ms={ms(s[-1]) if s else 'nan'}")
    print(f"reconnects={conn.reconnects}")
    return 0


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def slowest(args):
    samples = [(float(t), float(d)) for t, d, status in read_tsv(args.samples) if status != "error"]
    deploys = [(row[0], float(row[1]), float(row[2])) for row in read_tsv(args.deploys)]
    if not samples:
        print("slowest=none")
        return 1
    t_first = samples[0][0]

    def in_flight(t):
        return next((idx for idx, a, b in deploys if a <= t <= b), None)

    top = sorted(samples, key=lambda s: s[1], reverse=True)[: args.top]
    parts = []
    for t, d in top:
        idx = in_flight(t)
        parts.append(f"{t - t_first:.2f}s:{d * 1000:.1f}ms:{'deploy ' + idx if idx else 'no deploy'}")
    print(f"slowest={', '.join(parts)}")
    during = sorted(d for t, d in samples if in_flight(t) is not None)
    between = sorted(d for t, d in samples if in_flight(t) is None)
    print(f"during_n={len(during)}")
    print(f"during_p99_ms={ms(percentile(during, 99))}")
    print(f"during_max_ms={ms(during[-1]) if during else 'nan'}")
    print(f"between_n={len(between)}")
    print(f"between_max_ms={ms(between[-1]) if between else 'nan'}")
    stalls = [d for _, d in samples if d * 1000 > args.stall_ms]
    print(f"stalls={len(stalls)}")
    print(f"stalled_s={sum(stalls):.2f}")
    print(f"span_s={samples[-1][0] + samples[-1][1] - t_first:.2f}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, interval, timeout in (("health", 2.0, 10.0), ("writes", 50.0, 60.0)):
        p = sub.add_parser(name)
        p.add_argument("--addr", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--token", required=True)
        p.add_argument("--stop", required=True, help="stop once this file exists")
        p.add_argument("--ready", help="created once the first request is answered")
        p.add_argument("--max-seconds", type=float, default=300.0)
        p.add_argument("--interval-ms", type=float, default=interval, help="pace: one request per interval")
        p.add_argument("--timeout", type=float, default=timeout, help="per-request socket timeout")
    sub.choices["health"].add_argument("--samples", required=True, help="TSV file for every sample")
    sub.choices["writes"].add_argument("--prefix", default="bench", help="slug/key name prefix and deploy scope")
    s = sub.add_parser("slowest")
    s.add_argument("--samples", required=True)
    s.add_argument("--deploys", required=True)
    s.add_argument("--top", type=int, default=5)
    s.add_argument("--stall-ms", type=float, default=50.0, help="answers slower than this are stalls")
    args = ap.parse_args()
    return {"health": health, "writes": writes, "slowest": slowest}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
