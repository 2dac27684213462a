#!/usr/bin/env python3
"""Helpers for bench/bench_analytics.sh. Each prints key=value lines on stdout.

  analytics_util.py events --admin HOST:PORT --token T
        the `events` counters of GET /api/system/health: accepted, committed, dropped_full,
        dropped_stopped, unwritten, queue_depth, batches, batch_failures; t (unix time, float)
  analytics_util.py drain --admin HOST:PORT --token T --after UNIX_SECS [--timeout S]
        sleeps until UNIX_SECS, samples the counters (at_deadline.*), then polls every 20 ms until
        the writer has committed everything accepted (committed + unwritten == accepted and
        queue_depth == 0 in two polls in a row). Prints t_drained (unix time of the first of
        those polls), waited_s (from UNIX_SECS), timed_out (1 if --timeout seconds passed first)
        and the final counters.
  analytics_util.py count DB
        rows=N, the rows of the events table of the SQLite file DB
  analytics_util.py stats-check --admin HOST:PORT --token T --path PATH
        GET PATH once: status, bytes, totals_events, totals_pageviews, totals_visitors,
        timeline_len, ms
"""

import argparse
import http.client
import json
import os
import sqlite3
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

FIELDS = ("accepted", "committed", "unwritten", "queue_depth", "batches", "batch_failures")


class Admin:
    def __init__(self, addr, token, timeout=10.0):
        host, _, port = addr.rpartition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.headers = {"Authorization": f"Bearer {token}", "Host": f"localhost:{port}"}
        self.conn = None

    def get(self, path):
        """(status, body bytes); one reconnect on a dropped keep-alive connection."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("GET", path, headers=self.headers)
                resp = self.conn.getresponse()
                body = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, body
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def events(self):
        status, body = self.get("/api/system/health")
        if status != 200:
            raise RuntimeError(f"GET /api/system/health answered {status}: {body[:300]!r}")
        ev = json.loads(body)["events"]
        out = {k: int(ev[k]) for k in FIELDS}
        out["dropped_full"] = int(ev["dropped"]["queue_full"])
        out["dropped_stopped"] = int(ev["dropped"]["stopped"])
        return out


def emit(values, prefix=""):
    for k, v in values.items():
        print(f"{prefix}{k}={v}")


def drained(ev):
    return ev["committed"] + ev["unwritten"] >= ev["accepted"] and ev["queue_depth"] == 0


def cmd_events(args):
    ev = Admin(args.admin, args.token).events()
    ev["t"] = f"{time.time():.3f}"
    emit(ev)
    return 0


def cmd_drain(args):
    admin = Admin(args.admin, args.token)
    admin.events()  # connect now, not at the deadline
    pause = args.after - time.time()
    if pause > 0:
        time.sleep(pause)
    first = admin.events()
    emit(first, "at_deadline.")
    print(f"at_deadline.t={time.time():.3f}")
    candidate = None
    ev = first
    end = args.after + args.timeout
    while True:
        now = time.time()
        if drained(ev):
            if candidate is not None:
                break
            candidate = now
        else:
            candidate = None
        if now > end:
            break
        time.sleep(0.02)
        ev = admin.events()
    timed_out = candidate is None or not drained(ev)
    emit(ev)
    print(f"timed_out={int(timed_out)}")
    if not timed_out:
        print(f"t_drained={candidate:.3f}")
        print(f"waited_s={max(0.0, candidate - args.after):.3f}")
    return 0


def cmd_count(args):
    if not os.path.exists(args.db):
        print(f"analytics_util.py: {args.db} does not exist", file=sys.stderr)
        return 1
    con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    try:
        print(f"rows={con.execute('SELECT count(*) FROM events').fetchone()[0]}")
    finally:
        con.close()
    return 0


def cmd_stats_check(args):
    admin = Admin(args.admin, args.token, timeout=60.0)
    t0 = time.perf_counter()
    status, body = admin.get(args.path)
    ms = (time.perf_counter() - t0) * 1000
    print(f"status={status}")
    print(f"bytes={len(body)}")
    print(f"ms={ms:.1f}")
    if status == 200:
        doc = json.loads(body)
        for k in ("events", "pageviews", "visitors"):
            print(f"totals_{k}={doc.get('totals', {}).get(k, 'n/a')}")
        print(f"timeline_len={len(doc.get('timeline', []))}")
    else:
        print(f"error={body[:200].decode('utf-8', 'replace')!r}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("events")
    p.add_argument("--admin", required=True)
    p.add_argument("--token", required=True)
    p = sub.add_parser("drain")
    p.add_argument("--admin", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--after", type=float, required=True)
    p.add_argument("--timeout", type=float, default=120.0)
    p = sub.add_parser("count")
    p.add_argument("db")
    p = sub.add_parser("stats-check")
    p.add_argument("--admin", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--path", required=True)
    args = ap.parse_args()
    return {"events": cmd_events, "drain": cmd_drain, "count": cmd_count,
            "stats-check": cmd_stats_check}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
