#!/usr/bin/env python3
"""Open COUNT TLS keep-alive connections (one GET each, then idle) and report the server's RSS.

For bench/tls.sh. The connections come round-robin from --sources loopback addresses (127.0.0.2,
127.0.0.3, ...), so a server that caps connections per client address (fazt's
FAZT_CONNS_PER_CLIENT) sees --sources clients, not one; --sources 0 uses 127.0.0.1 only.

Prints key=value lines: opened, failures, open_s, rss_before_kib, rss_idle_kib, bytes_per_conn
(RSS growth / opened), still_open (connections that still answer a GET after the RSS reading,
checked on a sample of up to 100). A failed connection (refused, reset, timeout) is counted and
the next one tried; the first three errors go to stderr. Bounded: each handshake and request
times out after 10 s. Exits 1 when no connection could be opened.
"""

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import ResponseParser, build_request, connect, raise_nofile, read_response, tls_context, vmrss_kib  # noqa: E402


def get(conn, request):
    """One GET on an open connection; True on a complete 200 answer that keeps it open."""
    parser = ResponseParser()
    conn.sendall(request)
    read_response(conn, parser)
    return parser.status == 200 and not parser.close


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--sources", type=int, default=64, help="loopback source addresses (0: 127.0.0.1 only)")
    ap.add_argument("--host", default="bench.localhost")
    ap.add_argument("--path", default="/")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds idle before RSS is read")
    args = ap.parse_args()
    if not 0 <= args.sources <= 250:
        ap.error("--sources must be from 0 to 250")
    soft = raise_nofile(args.count + 256)
    if soft < args.count + 64:
        print(f"tls_idle.py: open-file limit {soft} is too low for {args.count} connections", file=sys.stderr)
        return 1
    sources = [f"127.0.0.{i + 2}" for i in range(args.sources)] or ["127.0.0.1"]
    ctx = tls_context()
    request = build_request(args.path, args.host)
    before = vmrss_kib(args.pid)
    conns, failures = [], 0
    t0 = time.perf_counter()
    for i in range(args.count):
        conn = None
        try:
            conn = connect("127.0.0.1", args.port, 10, ctx, args.host, sources[i % len(sources)])
            if not get(conn, request):
                raise ConnectionError("no 200 keep-alive answer")
            conns.append(conn)
        except (OSError, ValueError) as e:
            failures += 1
            if failures <= 3:
                print(f"tls_idle.py: connection {i}: {e!r}", file=sys.stderr)
            if conn is not None:
                conn.close()
    open_s = time.perf_counter() - t0
    time.sleep(args.settle)
    idle = vmrss_kib(args.pid)
    still_open = 0
    sample = conns[:: max(1, len(conns) // 100)]
    for conn in sample:
        try:
            still_open += get(conn, request)
        except (OSError, ValueError):
            pass
    print(f"opened={len(conns)}")
    print(f"failures={failures}")
    print(f"open_s={open_s:.1f}")
    print(f"rss_before_kib={before}")
    print(f"rss_idle_kib={idle}")
    print(f"bytes_per_conn={(idle - before) * 1024 // max(len(conns), 1)}")
    print(f"still_open={still_open}/{len(sample)}")
    for conn in conns:
        conn.close()
    return 0 if conns else 1


if __name__ == "__main__":
    sys.exit(main())
