#!/usr/bin/env python3
"""Open many idle keep-alive connections and measure the server while they stay open.

For bench/bench.sh (memory section). Opens --count TCP connections to the server (non-blocking
sockets + selectors, at most --window of them in flight), sends one complete GET on each, reads the
whole response, and keeps the connection open. Then, with all of them idle:
  * reads the server's VmRSS and open fd count from /proc/<pid>,
  * checks how many connections the server still keeps open (none readable / no EOF),
  * times a normal request made with curl on a fresh connection (--probes times),
  * with --hold S, keeps them open S seconds more and reports the server's CPU time over them
    (utime + stime from /proc/<pid>/stat): what idle connections cost the server,
then closes everything and reads VmRSS again.

Prints key=value lines on stdout (see the end of main()). Bounded in time: --open-timeout for the
opening phase, curl --max-time for each probe.
"""

import argparse
import errno
import os
import select
import selectors
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import ResponseParser, add_server_args, build_request, raise_nofile, vmrss_kib  # noqa: E402
from util import fmt_counts  # noqa: E402


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class Conn:
    __slots__ = ("sock", "state", "parser", "sent")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connecting"
        self.parser = ResponseParser()
        self.sent = 0


def open_connections(args, request):
    sel = selectors.DefaultSelector()
    done = []
    failures = {}
    statuses = {}
    started = 0
    in_flight = 0
    deadline = time.monotonic() + args.open_timeout

    def fail(c, why):
        nonlocal in_flight
        failures[why] = failures.get(why, 0) + 1
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        in_flight -= 1

    while (started < args.count or in_flight) and time.monotonic() < deadline:
        while started < args.count and in_flight < args.window:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rc = s.connect_ex((args.addr, args.port))
            started += 1
            c = Conn(s)
            if rc not in (0, errno.EINPROGRESS):
                why = f"connect:{errno.errorcode.get(rc, rc)}"
                failures[why] = failures.get(why, 0) + 1
                s.close()
                continue
            in_flight += 1
            sel.register(s, selectors.EVENT_WRITE, c)
        for key, _ in sel.select(timeout=0.2):
            c = key.data
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, f"connect:{errno.errorcode.get(err, err)}")
                    continue
                c.state = "sending"
            if c.state == "sending":
                try:
                    c.sent += c.sock.send(request[c.sent:])
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(c, f"send:{errno.errorcode.get(e.errno, e.errno)}")
                    continue
                if c.sent == len(request):
                    c.state = "reading"
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            if c.state == "reading":
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    fail(c, f"recv:{errno.errorcode.get(e.errno, e.errno)}")
                    continue
                try:
                    finished = c.parser.feed(data) if data else c.parser.eof()
                except ValueError:
                    fail(c, "bad-response")
                    continue
                if not finished and not data:
                    fail(c, "closed-before-response")
                    continue
                if finished:
                    st = c.parser.status
                    statuses[st] = statuses.get(st, 0) + 1
                    sel.unregister(c.sock)
                    in_flight -= 1
                    if c.parser.close or not data:
                        # Server announced close (e.g. 503 over the cap): not an idle keep-alive conn.
                        failures["server-closed-after-response"] = (
                            failures.get("server-closed-after-response", 0) + 1
                        )
                        c.sock.close()
                    else:
                        c.parser = None  # free the buffer; this is now an idle connection
                        done.append(c.sock)
    # Anything still in flight at the deadline counts as a timeout.
    for key in list(sel.get_map().values()):
        failures["timeout"] = failures.get("timeout", 0) + 1
        sel.unregister(key.fileobj)
        key.fileobj.close()
    sel.close()
    return done, failures, statuses, started


def cpu_seconds(pid):
    """utime + stime of the process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def still_open(socks):
    """Number of sockets with no EOF/reset/unexpected data pending, checked without blocking."""
    ep = select.epoll(sizehint=len(socks))
    try:
        for s in socks:
            ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        closed = len(ep.poll(0, maxevents=len(socks) or 1))
    finally:
        ep.close()
    return len(socks) - closed


def curl_probe(args):
    cmd = [
        "curl", "-sS", "-o", "/dev/null", "--max-time", "10",
        "-w", "%{http_code} %{time_total}",
        "-H", f"Host: {args.host_header}",
        f"http://{args.addr}:{args.port}{args.path}",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=15).stdout.split()
        return int(out[0]), float(out[1]) * 1000
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return 0, float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_server_args(ap, host_header="root.localhost", path="/")
    ap.add_argument("--pid", type=int, required=True, help="server pid, for VmRSS and fd count")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--window", type=int, default=512, help="connections in flight at once")
    ap.add_argument("--open-timeout", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds idle before measuring")
    ap.add_argument("--probes", type=int, default=5)
    ap.add_argument("--hold", type=float, default=0.0,
                    help="seconds to keep the idle connections open while measuring the server's CPU time")
    args = ap.parse_args()

    limit = raise_nofile(args.count + 1024)
    if limit < args.count + 64:
        print(f"idle_conns.py: RLIMIT_NOFILE is {limit}, need {args.count + 64}", file=sys.stderr)
        return 2

    rss_before = vmrss_kib(args.pid)
    fds_before = fd_count(args.pid)
    request = build_request(args.path, args.host_header)

    t0 = time.monotonic()
    socks, failures, statuses, started = open_connections(args, request)
    open_s = time.monotonic() - t0

    time.sleep(args.settle)
    rss_open = vmrss_kib(args.pid)
    fds_open = fd_count(args.pid)
    open_now = still_open(socks)
    probes = [curl_probe(args) for _ in range(args.probes)]
    rss_open_after_probe = vmrss_kib(args.pid)
    open_after_probe = still_open(socks)
    cpu_held = None
    if args.hold > 0:
        cpu_start = cpu_seconds(args.pid)
        time.sleep(args.hold)
        cpu_held = cpu_seconds(args.pid) - cpu_start
        open_after_hold = still_open(socks)

    for s in socks:
        s.close()
    time.sleep(args.settle)
    rss_after = vmrss_kib(args.pid)
    fds_after = fd_count(args.pid)

    times = sorted(t for _, t in probes)
    print(f"requested={args.count}")
    print(f"started={started}")
    print(f"idle_ok={len(socks)}")
    print(f"open_seconds={open_s:.2f}")
    print(f"statuses={fmt_counts(statuses, key=str)}")
    print(f"failures={fmt_counts(failures, key=str)}")
    print(f"still_open={open_now}")
    print(f"still_open_after_probe={open_after_probe}")
    print(f"rss_before_kib={rss_before}")
    print(f"rss_open_kib={max(x or 0 for x in (rss_open, rss_open_after_probe))}")
    print(f"rss_after_close_kib={rss_after}")
    print(f"fds_before={fds_before}")
    print(f"fds_open={fds_open}")
    print(f"fds_after_close={fds_after}")
    print("probe_statuses=" + ",".join(str(st) for st, _ in probes))
    print(f"probe_ms_median={times[len(times) // 2]:.2f}" if times else "probe_ms_median=nan")
    print(f"probe_ms_max={times[-1]:.2f}" if times else "probe_ms_max=nan")
    print(f"probe_ms_first={probes[0][1]:.2f}" if probes else "probe_ms_first=nan")
    if cpu_held is not None:
        print(f"held_seconds={args.hold:g}")
        print(f"cpu_seconds_held={cpu_held:.2f}")
        print(f"still_open_after_hold={open_after_hold}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
