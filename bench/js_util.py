#!/usr/bin/env python3
"""Clients and parsing for bench/bench_js.sh (stdlib only).

  js_util.py metrics URL TOKEN NAME...
      GET URL (fazt's admin /metrics, Bearer TOKEN), print KEY=value for each NAME: a metric
      with one label as written ('fazt_js_invocations_total{outcome="ok"}') is that one series,
      KEY 'fazt_js_invocations_total:ok'; a bare name is the sum of all its series, KEY the name
      (n/a when absent).
  js_util.py spread --port P --hosts FILE --path PATH --rounds R [--conns C]
      Every Host of FILE (one a line) gets R GET PATH requests, C keep-alive connections at a
      time (each connection works through its share of the list R times), so each site runs on
      several JS workers. Prints: requests, statuses, errors, seconds.
  js_util.py loops --port P --host-header H --path PATH --count N [--max-seconds S]
      N connections at once, each sending one GET and waiting for its whole answer (up to S
      seconds). Prints: n, answered, statuses, errors, and per status class (s504, s503, other)
      the count and p50/p99/max milliseconds from the connection's request to its answer,
      plus open_ms (how long opening all N connections took).
"""

import argparse
import asyncio
import os
import re
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import ResponseParser, build_request, raise_nofile  # noqa: E402
from latency import percentile  # noqa: E402
from util import fmt_counts  # noqa: E402


def metrics(url, token, names):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            series[key] = float(value)
        except ValueError:
            continue
    for name in names:
        if "{" in name:
            value = series.get(name)
        else:
            found = [v for k, v in series.items() if k == name or k.startswith(name + "{")]
            value = sum(found) if found else None
        key = re.sub(r'\{[^=]+="([^"]*)"\}', r":\1", name)
        print(f"{key}={'n/a' if value is None else f'{value:.0f}'}")
    return 0


async def _exchange(reader, writer, request, parser):
    writer.write(request)
    await writer.drain()
    while True:
        data = await reader.read(65536)
        if not data:
            if parser.eof():
                return parser.status
            raise ConnectionError("closed mid-response")
        if parser.feed(data):
            status = parser.status
            parser.next_message()
            return status


async def _spread(args):
    with open(args.hosts) as f:
        hosts = [line.strip() for line in f if line.strip()]
    statuses, errors = {}, []
    conns = max(1, min(args.conns, len(hosts)))

    async def worker(share):
        reader = writer = None
        parser = ResponseParser()
        for _ in range(args.rounds):
            for host in share:
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                    status = await _exchange(reader, writer, build_request(args.path, host), parser)
                    statuses[status] = statuses.get(status, 0) + 1
                    if parser.close:
                        writer.close()
                        writer = None
                except (OSError, ValueError, ConnectionError) as e:
                    errors.append(f"{host}: {e}")
                    writer, parser = None, ResponseParser()
        if writer is not None:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker(hosts[i::conns]) for i in range(conns)))
    print(f"requests={sum(statuses.values())}")
    print(f"statuses={fmt_counts(statuses)}")
    print(f"errors={len(errors)}")
    if errors:
        print(f"first_error={errors[0]}")
    print(f"seconds={time.monotonic() - t0:.2f}")
    return 0


async def _loops(args):
    request = build_request(args.path, args.host_header, keep_alive=False)
    opened, results, errors = [], [], []
    t0 = time.monotonic()
    for _ in range(args.count):
        try:
            opened.append(await asyncio.open_connection("127.0.0.1", args.port))
        except OSError as e:
            errors.append(f"connect: {e}")
    open_ms = (time.monotonic() - t0) * 1000

    async def one(reader, writer):
        start = time.monotonic()
        try:
            status = await asyncio.wait_for(
                _exchange(reader, writer, request, ResponseParser()), args.max_seconds)
            results.append((status, (time.monotonic() - start) * 1000))
        except (OSError, ValueError, ConnectionError, asyncio.TimeoutError) as e:
            errors.append(f"{type(e).__name__}: {e}")
        finally:
            writer.close()

    await asyncio.gather(*(one(r, w) for r, w in opened))
    statuses = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"n={args.count}")
    print(f"answered={len(results)}")
    print(f"statuses={fmt_counts(statuses)}")
    print(f"errors={len(errors)}")
    if errors:
        print(f"first_error={errors[0]}")
    print(f"open_ms={open_ms:.0f}")
    for name, accept in (("s504", lambda s: s == 504), ("s503", lambda s: s == 503),
                         ("other", lambda s: s not in (503, 504))):
        times = sorted(ms for s, ms in results if accept(s))
        print(f"{name}={len(times)}")
        for p in (50, 99):
            print(f"{name}_p{p}_ms={percentile(times, p):.0f}" if times else f"{name}_p{p}_ms=n/a")
        print(f"{name}_max_ms={times[-1]:.0f}" if times else f"{name}_max_ms=n/a")
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("metrics")
    m.add_argument("url")
    m.add_argument("token")
    m.add_argument("names", nargs="+")
    s = sub.add_parser("spread")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--hosts", required=True)
    s.add_argument("--path", required=True)
    s.add_argument("--rounds", type=int, default=1)
    s.add_argument("--conns", type=int, default=8)
    lo = sub.add_parser("loops")
    lo.add_argument("--port", type=int, required=True)
    lo.add_argument("--host-header", required=True)
    lo.add_argument("--path", required=True)
    lo.add_argument("--count", type=int, default=1000)
    lo.add_argument("--max-seconds", type=float, default=120.0)
    args = ap.parse_args(argv)
    if args.cmd == "metrics":
        return metrics(args.url, args.token, args.names)
    raise_nofile()
    return asyncio.run(_spread(args) if args.cmd == "spread" else _loops(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
