#!/usr/bin/env python3
"""Slow-body flood from one address while another address probes /health (issue #11).

One attacker address opens --conns connections, each sending a POST head with a large
Content-Length and then one body byte every --drip seconds (reconnecting whenever the server
closes one); a second address sends a /health probe every 0.2 s. Prints what the attacker held
and what the probes got. Numbers are printed, never asserted:

    fazt server start --listen 127.0.0.1:4698 &    # e.g. with FAZT_MAX_CONNECTIONS=2000
    python3 bench/slow_clients.py --port 4698 --conns 2500 --drip 2 --seconds 40
"""
import argparse, select, socket, time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--attacker", default="127.0.0.2")
p.add_argument("--prober", default="127.0.0.3")
p.add_argument("--conns", type=int, default=3000)
p.add_argument("--drip", type=float, default=2.0)
p.add_argument("--seconds", type=float, default=30.0)
a = p.parse_args()
HEAD = b"POST /x HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: 60000\r\n\r\n"

def open_one():
    s = socket.socket()
    s.bind((a.attacker, 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", a.port))
        s.sendall(HEAD)
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return s

stats = {"opened": 0, "answered_503": 0, "answered_408": 0, "closed_other": 0}
live = []
def top_up():
    while len(live) < a.conns:
        s = open_one()
        stats["opened"] += 1
        if s is None:
            stats["closed_other"] += 1
            return
        live.append(s)

def reap():
    """Drops connections the server answered or closed; counts how."""
    if not live:
        return
    poller = select.poll()
    by_fd = {s.fileno(): s for s in live}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    for fd, _ in poller.poll(0):
        s = by_fd[fd]
        try:
            data = s.recv(256)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 503"):
            stats["answered_503"] += 1
        elif data.startswith(b"HTTP/1.1 408"):
            stats["answered_408"] += 1
        else:
            stats["closed_other"] += 1
        live.remove(s)
        s.close()

def probe():
    s = socket.socket()
    s.bind((a.prober, 0))
    s.settimeout(5)
    t = time.time()
    try:
        s.connect(("127.0.0.1", a.port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n\r\n")
        status = s.recv(64)[9:12].decode() or "closed"
    except OSError as e:
        status = type(e).__name__
    finally:
        s.close()
    return status, time.time() - t

start = time.time()
top_up()
time.sleep(0.5)
reap()
held_after_setup = len(live)
probes, last_drip = {}, time.time()
slowest = 0.0
while time.time() - start < a.seconds:
    if time.time() - last_drip >= a.drip:
        for s in list(live):
            try:
                s.send(b"x")
            except OSError:
                stats["closed_other"] += 1
                live.remove(s)
                s.close()
        last_drip = time.time()
    reap()
    top_up()
    status, took = probe()
    slowest = max(slowest, took)
    probes[status] = probes.get(status, 0) + 1
    time.sleep(0.2)
total = sum(probes.values())
print(f"attacker {a.attacker}: asked for {a.conns} slow bodies at 1 byte/{a.drip}s; held {held_after_setup} after setup; "
      f"connections opened {stats['opened']}, refused 503 {stats['answered_503']}, "
      f"cut 408 {stats['answered_408']}, closed otherwise {stats['closed_other']}")
print(f"prober {a.prober}: {total} probes over {a.seconds:.0f}s: {probes}; slowest {slowest*1000:.0f} ms")
