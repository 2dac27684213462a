#!/usr/bin/env python3
"""Small helpers for bench/bench.sh.

  util.py free-port              print a TCP port on 127.0.0.1 that was free a moment ago
  util.py bench-exe NAME         read `cargo ... --message-format=json` on stdin, print the
                                 executable built for the bench target NAME
  util.py wrk-parse FILE         parse wrk output (run with --latency), print key=value lines:
                                 rps, requests, p50_ms, p99_ms, non2xx, socket_errors
  util.py rss-tree PID           VmRSS in KiB of PID plus its direct children (nginx master+workers)
  util.py cpu-tree PID           CPU seconds (user + system) used so far by PID plus its direct
                                 children, every thread included
  util.py json-kv URL [HEADER]   GET URL (optional header 'Name: value'), print the JSON answer
                                 flattened into key=value lines (nested keys joined with '.')
  util.py pctl FILE...           latency samples (ms, one a line, from latency.py --samples) of
                                 all FILEs pooled: n, p50_ms, p99_ms, max_ms

Imported by the clients in this folder for fmt_counts (counters as one key=value line).
"""

import json
import os
import re
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import vmrss_kib  # noqa: E402


def fmt_counts(counts, key=None):
    """{200: 3, 503: 1} -> '200:3,503:1', in the order of sorted(counts.items(), key=key); 'none'
    when empty."""
    return ",".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=key)) or "none"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def bench_exe(name):
    exe = None
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (
            msg.get("reason") == "compiler-artifact"
            and msg.get("target", {}).get("name") == name
            and msg.get("executable")
        ):
            exe = msg["executable"]
    if not exe:
        print(f"util.py: no executable for bench target {name!r} in cargo output", file=sys.stderr)
        return 1
    print(exe)
    return 0


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNITS_MS[m.group(2)] if m else float("nan")


def wrk_parse(path):
    out = {"rps": "nan", "requests": "0", "p50_ms": "nan", "p99_ms": "nan", "non2xx": "0",
           "socket_errors": "0"}
    with open(path) as f:
        text = f.read()
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = f"{float(m.group(1)):.0f}"
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = m.group(1)
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        if m:
            out[key] = f"{_ms(m.group(1)):.2f}"
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = m.group(1)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = str(sum(int(x) for x in m.groups()))
        out["socket_errors_detail"] = "connect {} read {} write {} timeout {}".format(*m.groups())
    for k, v in out.items():
        print(f"{k}={v}")
    return 0


def process_tree(pid):
    """PID and its direct children (nginx's master and workers)."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def rss_tree(pid):
    print(sum(vmrss_kib(p) or 0 for p in process_tree(pid)))
    return 0


def cpu_seconds(pid):
    """utime + stime of a process, all its threads included (fields 14 and 15 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_tree(pid):
    print(f"{sum(cpu_seconds(p) for p in process_tree(pid)):.2f}")
    return 0


def _flatten(prefix, value, out):
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(f"{prefix}.{i}" if prefix else str(i), v, out)
    else:
        out.append((prefix, "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)))


def json_kv(url, header=None, timeout=10.0):
    import urllib.request

    req = urllib.request.Request(url)
    if header:
        name, _, val = header.partition(":")
        req.add_header(name.strip(), val.strip())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            doc = json.load(resp)
    except (OSError, ValueError) as e:
        print(f"util.py: json-kv {url}: {e}", file=sys.stderr)
        return 1
    out = []
    _flatten("", doc, out)
    for k, v in out:
        print(f"{k}={v}")
    return 0


def pctl(paths):
    from latency import percentile

    vals = []
    for path in paths:
        with open(path) as f:
            vals += [float(line) for line in f if line.strip()]
    vals.sort()
    print(f"n={len(vals)}")
    for p in (50, 99):
        print(f"p{p}_ms={percentile(vals, p):.3f}")
    print(f"max_ms={vals[-1] if vals else float('nan'):.3f}")
    return 0


def main(argv):
    if len(argv) >= 1 and argv[0] == "free-port":
        return free_port()
    if len(argv) == 2 and argv[0] == "bench-exe":
        return bench_exe(argv[1])
    if len(argv) == 2 and argv[0] == "wrk-parse":
        return wrk_parse(argv[1])
    if len(argv) == 2 and argv[0] == "rss-tree":
        return rss_tree(int(argv[1]))
    if len(argv) == 2 and argv[0] == "cpu-tree":
        return cpu_tree(int(argv[1]))
    if len(argv) in (2, 3) and argv[0] == "json-kv":
        return json_kv(argv[1], argv[2] if len(argv) == 3 else None)
    if len(argv) >= 2 and argv[0] == "pctl":
        return pctl(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
