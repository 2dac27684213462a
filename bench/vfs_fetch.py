#!/usr/bin/env python3
"""Fetch the files of a site directory from the server and compare them byte for byte.

For bench/bench_vfs.sh: the warm-up pass that fills fazt's cache (every file once, in order) and
the correctness checks after the load runs (--sample N random files). One keep-alive connection
(reconnecting if the server closes it), GET /NAME with the given Host header for each regular file
NAME directly in --dir.

Prints key=value lines: checked, ok, mismatches, errors, statuses, seconds, first_problem.
Exits 1 if any file was not served exactly. Bounded by --max-seconds.
"""

import argparse
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import ResponseParser, add_server_args, build_request, connect, read_response  # noqa: E402
from util import fmt_counts  # noqa: E402


def fetch(state, args, path):
    """(status, body bytes) of GET path; reconnects when needed. Raises OSError/ValueError."""
    if state.get("sock") is None:
        state["sock"] = connect(args.addr, args.port, args.timeout)
    sock = state["sock"]
    parser = ResponseParser()
    sock.sendall(build_request(path, args.host_header))
    read_response(sock, parser, 1 << 20)
    if parser.chunked:
        raise ValueError("chunked response (not expected for a static file)")
    body = bytes(parser.buf[parser.head_end:parser.head_end + parser.body_bytes])
    if parser.close:
        sock.close()
        state["sock"] = None
    elif len(parser.buf) > parser.head_end + parser.body_bytes:
        raise ValueError("extra bytes after the response body")
    return parser.status, body


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_args(ap)
    ap.add_argument("--dir", required=True, help="the directory the site was imported from")
    ap.add_argument("--sample", type=int, default=0, help="only N random files (0: all, in order)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    args = ap.parse_args()

    names = sorted(n for n in os.listdir(args.dir) if os.path.isfile(os.path.join(args.dir, n)))
    if args.sample and args.sample < len(names):
        names = random.Random(args.seed).sample(names, args.sample)
    state = {}
    ok = mismatches = errors = 0
    statuses = {}
    first_problem = "none"
    t0 = time.monotonic()
    for name in names:
        if time.monotonic() - t0 > args.max_seconds:
            errors += 1
            first_problem = first_problem if first_problem != "none" else f"time limit at /{name}"
            break
        try:
            status, body = fetch(state, args, "/" + name)
        except (OSError, ValueError) as e:
            errors += 1
            if first_problem == "none":
                first_problem = f"/{name}: {e!r}"
            if state.get("sock") is not None:
                state["sock"].close()
            state["sock"] = None
            continue
        statuses[status] = statuses.get(status, 0) + 1
        with open(os.path.join(args.dir, name), "rb") as f:
            want = f.read()
        if status == 200 and body == want:
            ok += 1
        else:
            mismatches += 1
            if first_problem == "none":
                first_problem = f"/{name}: HTTP {status}, {len(body)} bytes, expected 200 with {len(want)} bytes"
                if status == 200 and len(body) == len(want):
                    first_problem += " (same length, different bytes)"
    if state.get("sock") is not None:
        state["sock"].close()
    print(f"checked={len(names)}")
    print(f"ok={ok}")
    print(f"mismatches={mismatches}")
    print(f"errors={errors}")
    print(f"statuses={fmt_counts(statuses)}")
    print(f"seconds={time.monotonic() - t0:.2f}")
    print(f"first_problem={first_problem}")
    return 0 if ok == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
