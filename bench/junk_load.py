#!/usr/bin/env python3
"""Junk analytics load for bench/junk.sh (stdlib only). Prints key=value lines on stdout.

  junk_load.py send --port P --events N --sources K --conns C --pipeline W --domain D [--sites S]
               [--pid PID]
        N POST /track events, every one with its own path, referrer host, tag and campaign
        (utm_source, utm_medium, utm_campaign), every fourth with its own event type, spread over
        K processes that each bind their own loopback source address (127.0.0.2, .3, ...: K
        clients, as a rate limit per address sees them) and keep C keep-alive connections with
        W requests in flight on each. With --sites S > 1 the events go to S sites, s0.D .. s(S-1).D
        (D then needs a wildcard FAZT_TRACK_DOMAINS). With --pid, samples that process's VmRSS
        every 20 ms while sending. Prints sent, statuses (e.g. 204:500000), secs, rate,
        rss_peak_kib.
  junk_load.py get --admin HOST:PORT --token T --path PATH [--count N]
        GET PATH N times one after another on one keep-alive connection: median_ms, min_ms,
        max_ms, bytes (of the last answer), status (of the last answer).
"""

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analytics_util import Admin  # noqa: E402
from httpmini import ResponseParser, vmrss_kib  # noqa: E402
from util import fmt_counts  # noqa: E402

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def track_request(port, domain, n, source):
    """One /track request whose strings appear in no other event."""
    tag = f"{source}x{n}"
    body = {
        "d": domain,
        "p": f"/junk/{tag}/page-{n * 7919 % 1000003}",
        "ref": f"https://r{tag}.spam.example/landing",
        "t": [f"t{tag}"],
        "q": {"utm_source": f"s{tag}", "utm_medium": f"m{tag}", "utm_campaign": f"c{tag}"},
    }
    if n % 4 == 0:
        body["e"] = f"e{tag}"
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /track HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {UA}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    return head + data


def sender(args, source, first, count, out):
    """One client address: `count` events numbered from `first`, on args.conns connections."""
    addr = f"127.0.0.{source + 2}"
    socks = []
    for _ in range(args.conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((addr, 0))
        s.settimeout(60)
        s.connect(("127.0.0.1", args.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append([s, ResponseParser()])
    statuses = {}
    n, end = first, first + count
    while n < end:
        windows = []
        for conn in socks:
            k = min(args.pipeline, end - n)
            if k <= 0:
                break
            sites = max(1, args.sites)
            reqs = b"".join(
                track_request(
                    args.port,
                    args.domain if sites == 1 else f"s{i % sites}.{args.domain}",
                    i,
                    source,
                )
                for i in range(n, n + k)
            )
            conn[0].sendall(reqs)
            windows.append((conn, k))
            n += k
        for (s, parser), k in windows:
            got = 0
            while got < k:
                if not parser.done:
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError(f"{addr}: closed after {got} of {k} responses")
                    parser.feed(data)
                if parser.done:
                    statuses[parser.status] = statuses.get(parser.status, 0) + 1
                    got += 1
                    parser.next_message()
                    parser.feed(b"")
    for s, _ in socks:
        s.close()
    out.put(statuses)


def cmd_send(args):
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rss = vmrss_kib(args.pid) if args.pid else None
            if rss:
                peak[0] = max(peak[0], rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = multiprocessing.Queue()
    share = args.events // args.sources
    procs = []
    t0 = time.perf_counter()
    for k in range(args.sources):
        count = share if k < args.sources - 1 else args.events - share * k
        p = multiprocessing.Process(target=sender, args=(args, k, share * k, count, out))
        p.start()
        procs.append(p)
    statuses = {}
    for _ in procs:
        for code, n in out.get(timeout=3600).items():
            statuses[code] = statuses.get(code, 0) + n
    for p in procs:
        p.join()
    secs = time.perf_counter() - t0
    stop.set()
    sampler.join()
    sent = sum(statuses.values())
    print(f"sent={sent}")
    print(f"statuses={fmt_counts(statuses)}")
    print(f"ok={statuses.get(204, 0)}")
    print(f"secs={secs:.1f}")
    print(f"rate={sent / secs:.0f}")
    print(f"rss_peak_kib={peak[0]}")
    failed = [p.exitcode for p in procs if p.exitcode]
    return 1 if failed else 0


def cmd_get(args):
    admin = Admin(args.admin, args.token, timeout=120.0)
    times, status, body = [], None, b""
    for _ in range(args.count):
        t0 = time.perf_counter()
        status, body = admin.get(args.path)
        times.append((time.perf_counter() - t0) * 1000)
    print(f"status={status}")
    print(f"bytes={len(body)}")
    print(f"median_ms={statistics.median(times):.1f}")
    print(f"min_ms={min(times):.1f}")
    print(f"max_ms={max(times):.1f}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--events", type=int, default=500_000)
    s.add_argument("--sources", type=int, default=4)
    s.add_argument("--conns", type=int, default=4)
    s.add_argument("--pipeline", type=int, default=32)
    s.add_argument("--domain", required=True)
    s.add_argument("--sites", type=int, default=1)
    s.add_argument("--pid", type=int, default=0)
    g = sub.add_parser("get")
    g.add_argument("--admin", required=True)
    g.add_argument("--token", required=True)
    g.add_argument("--path", required=True)
    g.add_argument("--count", type=int, default=9)
    args = ap.parse_args()
    return cmd_send(args) if args.cmd == "send" else cmd_get(args)


if __name__ == "__main__":
    sys.exit(main())
