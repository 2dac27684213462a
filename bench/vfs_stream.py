#!/usr/bin/env python3
"""Many concurrent downloads of one large file while sampling the server's memory.

For bench/bench_vfs.sh (streaming section). Samples the server's VmRSS (and RssAnon/RssFile)
every --interval seconds for --before seconds, then starts --clients curl processes at once, each
fetching URL with the given Host header (client 0 saves the body to --save and its headers next to
it; the others discard the body), waits for all of them (each bounded by --max-time), then samples
--after seconds more. Afterwards it checks that every client got HTTP 200 and exactly
--expect-bytes bytes, and that client 0's body has sha256 --expect-sha256 (and the ETag, which fazt
makes the content's sha256).

Prints key=value lines: clients, ok_clients, statuses, sizes, sha_ok, etag, etag_ok, wall_s,
mib_per_s (all clients together), client_s_min/max, rss_before_kib, rss_peak_kib, rss_after_kib,
anon_before_kib, anon_peak_kib, anon_after_kib, file_peak_kib, samples_during, pid_alive,
problems.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from util import fmt_counts  # noqa: E402
from vfs_rss import Sampler, exit_on_signals  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--host-header", required=True)
    ap.add_argument("--pid", type=int, required=True, help="server pid, for VmRSS")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--expect-bytes", type=int, required=True)
    ap.add_argument("--expect-sha256", required=True)
    ap.add_argument("--save", required=True, help="where client 0 writes the body")
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--before", type=float, default=2.0)
    ap.add_argument("--after", type=float, default=2.0)
    ap.add_argument("--max-time", type=float, default=120.0, help="curl --max-time per client")
    ap.add_argument("--samples", help="TSV file for every RSS sample")
    args = ap.parse_args()

    exit_on_signals()
    headers_path = args.save + ".headers"
    procs = []
    s = Sampler(args.pid, args.interval, args.samples).start()
    try:
        s.start_during(args.before)
        t0 = time.monotonic()
        for i in range(args.clients):
            cmd = ["curl", "-sS", "--max-time", str(args.max_time), "-H", f"Host: {args.host_header}",
                   "-w", "%{http_code} %{size_download} %{time_total}\n"]
            cmd += ["-D", headers_path, "-o", args.save] if i == 0 else ["-o", os.devnull]
            cmd.append(args.url)
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = []
        for p in procs:
            out, err = p.communicate()
            results.append((p.returncode, out.strip(), err.strip()))
        wall = time.monotonic() - t0
        s.finish_during(args.after)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        s.stop()

    problems = []
    statuses, sizes, times = {}, {}, []
    ok = 0
    for i, (rc, out, err) in enumerate(results):
        parts = out.split()
        status, size, secs = (parts + ["?"] * 3)[:3]
        statuses[status] = statuses.get(status, 0) + 1
        sizes[size] = sizes.get(size, 0) + 1
        try:
            times.append(float(secs))
        except ValueError:
            pass
        if rc == 0 and status == "200" and size == str(args.expect_bytes):
            ok += 1
        elif len(problems) < 3:
            problems.append(f"client {i}: curl exit {rc}, HTTP {status}, {size} bytes"
                            + (f" ({err[:120]})" if err else ""))

    sha = hashlib.sha256()
    saved = 0
    try:
        with open(args.save, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                sha.update(block)
                saved += len(block)
    except OSError as e:
        problems.append(f"reading client 0's body: {e}")
    sha_ok = saved == args.expect_bytes and sha.hexdigest() == args.expect_sha256
    if not sha_ok:
        problems.append(f"client 0 body: {saved} bytes, sha256 {sha.hexdigest()[:16]}... "
                        f"(expected {args.expect_bytes} bytes, {args.expect_sha256[:16]}...)")
    etag = "none"
    try:
        with open(headers_path, encoding="latin-1") as f:
            for line in f:
                if line.lower().startswith("etag:"):
                    etag = line.split(":", 1)[1].strip().strip('"')
    except OSError:
        pass
    etag_ok = etag.lower().removeprefix("w/").strip('"') == args.expect_sha256
    try:
        os.unlink(args.save)  # 50 MB we no longer need
    except OSError:
        pass

    print(f"clients={args.clients}")
    print(f"ok_clients={ok}")
    print(f"statuses={fmt_counts(statuses)}")
    print(f"sizes={fmt_counts(sizes)}")
    print(f"sha_ok={int(sha_ok)}")
    print(f"etag={etag}")
    print(f"etag_ok={int(etag_ok)}")
    print(f"wall_s={wall:.2f}")
    total = sum(int(k) * v for k, v in sizes.items() if k.isdigit())
    print(f"mib_per_s={total / (1 << 20) / wall:.1f}" if wall > 0 else "mib_per_s=nan")
    print(f"client_s_min={min(times):.2f}" if times else "client_s_min=nan")
    print(f"client_s_max={max(times):.2f}" if times else "client_s_max=nan")
    print(f"rss_before_kib={s.last(phase='before')}")
    print(f"rss_peak_kib={s.peak(phase='during')}")
    print(f"rss_after_kib={s.last(phase='after')}")
    print(f"anon_before_kib={s.last('RssAnon', 'before')}")
    print(f"anon_peak_kib={s.peak('RssAnon', 'during')}")
    print(f"anon_after_kib={s.last('RssAnon', 'after')}")
    print(f"file_before_kib={s.last('RssFile', 'before')}")
    print(f"file_peak_kib={s.peak('RssFile', 'during')}")
    print(f"samples_during={s.count('during')}")
    print(f"pid_alive={0 if s.gone else 1}")
    print("problems=" + (" | ".join(problems) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
