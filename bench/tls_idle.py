#!/usr/bin/env python3
"""Open COUNT TLS keep-alive connections (one GET each, then idle) and report the server's RSS.

For bench/tls.sh. Prints key=value lines: rss_before_kib, rss_idle_kib, opened, bytes_per_conn.
Bounded: each handshake and request times out after 10 s.
"""

import argparse
import os
import socket
import ssl
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import raise_nofile, vmrss_kib  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--host", default="bench.localhost")
    ap.add_argument("--path", default="/")
    args = ap.parse_args()
    raise_nofile(args.count + 256)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    request = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n\r\n".encode()
    before = vmrss_kib(args.pid)
    conns = []
    for _ in range(args.count):
        raw = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        tls = ctx.wrap_socket(raw, server_hostname=args.host)
        tls.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = tls.recv(65536)
            if not chunk:
                break
            head += chunk
        conns.append(tls)
    time.sleep(1)
    idle = vmrss_kib(args.pid)
    print(f"opened={len(conns)}")
    print(f"rss_before_kib={before}")
    print(f"rss_idle_kib={idle}")
    print(f"bytes_per_conn={(idle - before) * 1024 // max(len(conns), 1)}")
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
