#!/usr/bin/env python3
"""Sequential request latency over one keep-alive connection (bench/bench.sh, admin latency).

Sends GET requests one after another on a single TCP connection (TCP_NODELAY) and times each from
just before send() to the last byte of the response with time.perf_counter(). With --interval-ms the
requests are paced (one starts at most every interval, like an operator's dashboard polling rather
than a second load generator fighting the server for CPU); without it they go back to back. Stops
after --count requests or --max-seconds, whichever comes first. If the server closes the connection, the client
reconnects (counted; the reconnect time is not included in a sample). With --tls the connection is
TLS (SNI: the Host header without its port; any certificate accepted), and the handshake, like a
reconnect, is outside the samples: they time requests on an open connection.

Prints key=value lines on stdout: n, p50_ms, p90_ms, p99_ms, max_ms, mean_ms, errors, reconnects,
statuses (e.g. 200:1998,503:2), elapsed_s. --samples FILE also writes every sample (ms, one a line),
so runs can be pooled (util.py pctl).
"""

import argparse
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import ResponseParser, add_server_args, build_request, connect, read_response, tls_context  # noqa: E402
from util import fmt_counts  # noqa: E402


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    # Nearest-rank percentile: the smallest value with at least p% of samples at or below it.
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_args(ap, host_header="localhost", path="/api/system/health")
    ap.add_argument("--header", action="append", default=[], help="extra header 'Name: value'")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--max-seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    ap.add_argument("--interval-ms", type=float, default=0.0, help="pace: one request per interval")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-request socket timeout")
    ap.add_argument("--tls", action="store_true", help="speak TLS (https)")
    ap.add_argument("--samples", help="also write every sample (ms, one a line) to this file")
    args = ap.parse_args()
    tls = tls_context() if args.tls else None
    sni = args.host_header.rsplit(":", 1)[0] if args.tls else None

    req = build_request(args.path, args.host_header, args.header)
    samples = []
    statuses = {}
    errors = 0
    reconnects = 0
    sock = None
    parser = ResponseParser()

    def one_request():
        """Returns (seconds, status) or raises; reconnects transparently when needed."""
        nonlocal sock, reconnects, parser
        if sock is None:
            sock = connect(args.addr, args.port, args.timeout, tls, sni)
            parser = ResponseParser()
        t0 = time.perf_counter()
        sock.sendall(req)
        read_response(sock, parser)
        dt = time.perf_counter() - t0
        status = parser.status
        if parser.close:
            sock.close()
            sock = None
            reconnects += 1
        else:
            parser.next_message()
        return dt, status

    start = time.perf_counter()
    deadline = start + args.max_seconds
    for _ in range(args.warmup):
        if time.perf_counter() >= deadline:
            break
        try:
            one_request()
        except (OSError, ValueError):
            if sock is not None:
                sock.close()
            sock = None
    reconnects = 0
    start = time.perf_counter()
    interval = args.interval_ms / 1000.0
    next_at = start
    while len(samples) + errors < args.count and time.perf_counter() < deadline:
        if interval > 0:
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)
            # Behind schedule (a slow response): continue from now, never burst to catch up.
            next_at = max(next_at, now) + interval
        try:
            dt, status = one_request()
        except (OSError, ValueError, socket.timeout) as e:
            errors += 1
            if errors <= 3:
                print(f"latency.py: request error: {e!r}", file=sys.stderr)
            if sock is not None:
                sock.close()
            sock = None
            continue
        statuses[status] = statuses.get(status, 0) + 1
        samples.append(dt)
    elapsed = time.perf_counter() - start
    if sock is not None:
        sock.close()

    if args.samples:
        with open(args.samples, "w") as f:
            f.writelines(f"{v * 1000:.3f}\n" for v in samples)
    s = sorted(samples)
    ms = lambda v: f"{v * 1000:.3f}"  # noqa: E731
    print(f"n={len(s)}")
    print(f"p50_ms={ms(percentile(s, 50))}")
    print(f"p90_ms={ms(percentile(s, 90))}")
    print(f"p99_ms={ms(percentile(s, 99))}")
    print(f"max_ms={ms(s[-1]) if s else 'nan'}")
    print(f"mean_ms={ms(sum(s) / len(s)) if s else 'nan'}")
    print(f"errors={errors}")
    print(f"reconnects={reconnects}")
    print(f"statuses={fmt_counts(statuses)}")
    print(f"elapsed_s={elapsed:.2f}")
    return 0 if s else 1


if __name__ == "__main__":
    sys.exit(main())
