#!/usr/bin/env python3
"""The site, the archive and the measured uploads of bench/bench_deploy.sh.

    deploy_site.py gen DIR --bytes N --files N [--seed S]
        A deterministic static site in DIR: about 1 in 10 files are HTML/CSS/JS (small, compressible
        text), the rest incompressible bytes (random.Random(seed)) with log-normal sizes (a few KiB to
        a few MiB) in img/, media/ and fonts/, scaled so the site totals exactly --bytes.
        Prints: files, bytes, text_files, text_bytes, largest.
    deploy_site.py zip DIR ZIP
        Every file of DIR into ZIP (deflate, fixed timestamps, sorted: the same DIR gives the same
        bytes), as the Go client builds it. Prints: zip_bytes, entries.
    deploy_site.py change DIR [--seed S]
        Rewrites one binary file of DIR (the one nearest the median size) with new random bytes of
        the same length. Prints: changed_path, changed_bytes.
    deploy_site.py deploy --pid PID --url URL --token T --site NAME --zip ZIP [--interval 0.02]
        Uploads ZIP with curl as the Go client does (multipart/form-data: site_name, then file)
        while a background thread samples /proc/PID/status every --interval seconds. Prints:
        http_status, wall_s (curl start to exit: upload + apply, client side), curl_total_s
        (curl's own time_total), rss_before_kib (last sample before the
        upload), rss_peak_kib (highest during), rss_after_kib, growth_kib (peak - before),
        anon_before_kib, anon_peak_kib, anon_growth_kib, hwm_before_kib, hwm_after_kib (VmHWM),
        samples_during, and the answer's JSON fields as resp_<key> (resp_error on failure).
    deploy_site.py check --public HOST:PORT --site NAME --dir DIR [--sample N] [--also PATH...]
        GETs N files of DIR (spread over the sorted list; every --also path too) from the site and
        compares the bytes. Prints: checked, ok, statuses, first_problem. Exits 1 on any mismatch.
"""

import argparse
import http.client
import json
import math
import os
import random
import subprocess
import sys
import time
import zipfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from util import fmt_counts  # noqa: E402
from vfs_rss import Sampler, exit_on_signals  # noqa: E402

BINARY_DIRS = (("img", ".jpg"), ("img", ".png"), ("media", ".mp4"), ("fonts", ".woff2"), ("dl", ".bin"))
WRITE_BLOCK = 4 << 20  # random bytes generated and written at most this many at a time
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def html_page(rnd, i, links):
    paras = "\n".join(
        f"<p>Section {j} of page {i}: " + " ".join(rnd.choice(WORDS) for _ in range(60)) + "</p>"
        for j in range(rnd.randint(5, 40))
    )
    nav = "\n".join(f'<li><a href="/{p}">{p}</a></li>' for p in links)
    return (
        f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Page {i}</title>\n"
        f'<link rel="stylesheet" href="/css/site-{i % 20:02d}.css"></head>\n'
        f"<body><nav><ul>\n{nav}\n</ul></nav>\n<main>\n{paras}\n</main></body></html>\n"
    ).encode()


def css_file(rnd, i):
    rules = "\n".join(
        f".c{i}-{j} {{ margin: {rnd.randint(0, 40)}px; color: #{rnd.randrange(1 << 24):06x}; "
        f"font-size: {rnd.randint(10, 30)}px; }}"
        for j in range(rnd.randint(50, 400))
    )
    return (rules + "\n").encode()


WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua static site deploy archive blob sqlite chunk cache server"
).split()


def write_random(path, rnd, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, WRITE_BLOCK)
            f.write(rnd.randbytes(n))
            left -= n


def gen(args):
    if args.files < 20 or args.bytes < args.files * 1024:
        print("deploy_site.py gen: need at least 20 files and 1 KiB per file", file=sys.stderr)
        return 2
    rnd = random.Random(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    n_text = max(10, args.files // 10)
    n_css = max(2, n_text // 10)
    n_js = max(1, n_text // 20)
    n_html = n_text - n_css - n_js
    html_paths = ["index.html"] + [f"pages/page-{i:04d}.html" for i in range(1, n_html)]
    text = {}
    for i, p in enumerate(html_paths):
        text[p] = html_page(rnd, i, html_paths[i + 1:i + 6])
    for i in range(n_css):
        text[f"css/site-{i:02d}.css"] = css_file(rnd, i)
    for i in range(n_js):
        text[f"js/app-{i:02d}.js"] = (
            "".join(f"function f{i}_{j}(x) {{ return x * {j} + {rnd.randint(0, 999)}; }}\n" for j in range(300))
        ).encode()
    text_bytes = sum(len(b) for b in text.values())
    bin_total = args.bytes - text_bytes
    n_bin = args.files - len(text)
    if bin_total < n_bin * 512:
        print("deploy_site.py gen: --bytes too small for the text files plus the binary files", file=sys.stderr)
        return 2
    # Log-normal sizes (median ~ 1/3 of the mean): many small images, a few large media files.
    weights = [math.exp(rnd.gauss(0.0, 1.2)) for _ in range(n_bin)]
    scale = (bin_total - n_bin * 512) / sum(weights)
    sizes = [512 + int(w * scale) for w in weights]
    sizes[0] += bin_total - sum(sizes)  # exact total
    for p, data in text.items():
        full = os.path.join(args.dir, p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    for i, size in enumerate(sizes):
        d, ext = BINARY_DIRS[i % len(BINARY_DIRS)]
        full = os.path.join(args.dir, d, f"{d}-{i:05d}{ext}")
        os.makedirs(os.path.dirname(full), exist_ok=True)
        write_random(full, rnd, size)
    print(f"files={len(text) + n_bin}")
    print(f"bytes={text_bytes + sum(sizes)}")
    print(f"text_files={len(text)}")
    print(f"text_bytes={text_bytes}")
    print(f"largest={max(sizes)}")
    return 0


def site_files(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            out.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    return sorted(out)


def make_zip(args):
    entries = 0
    with zipfile.ZipFile(args.zip, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for rel, full in site_files(args.dir):
            info = zipfile.ZipInfo(rel, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(full, "rb") as src, z.open(info, "w", force_zip64=False) as dst:
                while True:
                    block = src.read(1 << 20)
                    if not block:
                        break
                    dst.write(block)
            entries += 1
    print(f"zip_bytes={os.path.getsize(args.zip)}")
    print(f"entries={entries}")
    return 0


def change(args):
    files = [(rel, full, os.path.getsize(full)) for rel, full in site_files(args.dir) if not rel.endswith((".html", ".css", ".js"))]
    files.sort(key=lambda f: (f[2], f[0]))
    rel, full, size = files[len(files) // 2]
    write_random(full, random.Random(args.seed), size)
    print(f"changed_path={rel}")
    print(f"changed_bytes={size}")
    return 0


def vmhwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def deploy(args):
    exit_on_signals()
    cmd = [
        "curl", "-sS", "--max-time", str(args.max_seconds), "-o", args.response, "-w",
        "%{http_code} %{time_total}",
        "-H", f"Authorization: Bearer {args.token}",
        "-F", f"site_name={args.site}", "-F", f"file=@{args.zip};type=application/zip",
        args.url,
    ]
    hwm_before = vmhwm_kib(args.pid)
    s = Sampler(args.pid, args.interval, args.samples).start()
    child = None
    try:
        s.start_during(args.before)
        t0 = time.monotonic()
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = child.communicate()
        wall = time.monotonic() - t0
        s.finish_during(args.after)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        s.stop()
    hwm_after = vmhwm_kib(args.pid)
    if child.returncode != 0:
        print(f"deploy_site.py: curl failed (exit {child.returncode}): {err.decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    code, total = out.decode().split()
    print(f"http_status={code}")
    print(f"wall_s={wall:.3f}")
    print(f"curl_total_s={float(total):.3f}")
    before = s.last(phase="before")
    peak = s.peak(phase="during")
    anon_before = s.last("RssAnon", "before")
    anon_peak = s.peak("RssAnon", "during")
    print(f"rss_before_kib={before}")
    print(f"rss_peak_kib={peak}")
    print(f"rss_after_kib={s.last(phase='after')}")
    print(f"growth_kib={peak - before if peak is not None and before is not None else 'n/a'}")
    print(f"anon_before_kib={anon_before}")
    print(f"anon_peak_kib={anon_peak}")
    print(f"anon_growth_kib={anon_peak - anon_before if anon_peak is not None and anon_before is not None else 'n/a'}")
    print(f"hwm_before_kib={hwm_before}")
    print(f"hwm_after_kib={hwm_after}")
    print(f"samples_during={s.count('during')}")
    print(f"pid_alive={0 if s.gone else 1}")
    try:
        with open(args.response, "rb") as f:
            answer = json.loads(f.read() or b"{}")
    except ValueError:
        answer = {"error": "the answer is not JSON"}
    for k, v in answer.items():
        print(f"resp_{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}")
    return 0


def check(args):
    files = site_files(args.dir)
    picked = []
    if args.sample and files:
        step = max(1, len(files) // args.sample)
        picked = [rel for rel, _ in files[::step][:args.sample]]
    for p in args.also:
        if p not in picked:
            picked.append(p)
    host, port = args.public.rsplit(":", 1)
    ok = 0
    statuses = {}
    first_problem = "none"
    for rel in picked:
        conn = http.client.HTTPConnection(host, int(port), timeout=args.timeout)
        try:
            conn.request("GET", "/" + rel, headers={"Host": f"{args.site}.localhost"})
            r = conn.getresponse()
            body = r.read()
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            status, body = f"error({e!r})", b""
        finally:
            conn.close()
        statuses[status] = statuses.get(status, 0) + 1
        with open(os.path.join(args.dir, rel), "rb") as f:
            want = f.read()
        if status == 200 and body == want:
            ok += 1
        elif first_problem == "none":
            first_problem = f"/{rel}: HTTP {status}, {len(body)} bytes, expected 200 with {len(want)} bytes"
    print(f"checked={len(picked)}")
    print(f"ok={ok}")
    print(f"statuses={fmt_counts(statuses, key=lambda kv: str(kv[0]))}")
    print(f"first_problem={first_problem}")
    return 0 if ok == len(picked) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--bytes", type=int, required=True)
    g.add_argument("--files", type=int, required=True)
    g.add_argument("--seed", type=int, default=1)
    z = sub.add_parser("zip")
    z.add_argument("dir")
    z.add_argument("zip")
    c = sub.add_parser("change")
    c.add_argument("dir")
    c.add_argument("--seed", type=int, default=99)
    d = sub.add_parser("deploy")
    d.add_argument("--pid", type=int, required=True)
    d.add_argument("--url", required=True, help="http://ADMIN/api/deploy")
    d.add_argument("--token", required=True)
    d.add_argument("--site", required=True)
    d.add_argument("--zip", required=True)
    d.add_argument("--response", required=True, help="file for the answer's body")
    d.add_argument("--samples", help="TSV file for every RSS sample")
    d.add_argument("--interval", type=float, default=0.02)
    d.add_argument("--before", type=float, default=0.5)
    d.add_argument("--after", type=float, default=0.5)
    d.add_argument("--max-seconds", type=int, default=300)
    k = sub.add_parser("check")
    k.add_argument("--public", required=True)
    k.add_argument("--site", required=True)
    k.add_argument("--dir", required=True)
    k.add_argument("--sample", type=int, default=10)
    k.add_argument("--also", nargs="*", default=[])
    k.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    return {"gen": gen, "zip": make_zip, "change": change, "deploy": deploy, "check": check}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
