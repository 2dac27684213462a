#!/usr/bin/env python3
"""Send N sequential GETs on one keep-alive connection and fail on any non-200 answer.

For bench/hotpath.sh: the instruction count per request is the difference between two runs of
different N, so connection set-up and start-up cancel out. Bounded: a 30 s timeout per read.
"""

import os
import socket
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpmini import ResponseParser, build_request  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: keepalive_gets.py PORT N [HOST]")
    port, n = int(sys.argv[1]), int(sys.argv[2])
    host = sys.argv[3] if len(sys.argv) > 3 else "root.localhost"
    request = build_request("/", host)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(30)
    for i in range(n):
        sock.sendall(request)
        parser = ResponseParser()
        while True:
            data = sock.recv(65536)
            if not data:
                sys.exit(f"the server closed the connection after {i} responses")
            if parser.feed(data):
                break
        if parser.status != 200:
            sys.exit(f"response {i}: status {parser.status}")
    print(f"ok {n}")


if __name__ == "__main__":
    main()
