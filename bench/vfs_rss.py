#!/usr/bin/env python3
"""Sample a process's resident memory while a command runs (bench/bench_vfs.sh, memory sections).

    vfs_rss.py --pid PID [--interval 0.5] [--before 1] [--after 1] [--samples FILE]
               [--cmd-out FILE] -- COMMAND...

Samples /proc/PID/status (VmRSS, RssAnon, RssFile, RssShmem) every --interval seconds: --before
seconds alone, then while COMMAND runs (its stdout and stderr go to --cmd-out, default /dev/null),
then --after seconds alone. Every sample is written to --samples as a TSV line (seconds since start,
phase, VmRSS, RssAnon, RssFile, RssShmem in KiB). Prints key=value lines:
  rss_before_kib   last sample before COMMAND started
  rss_peak_kib     highest VmRSS while COMMAND ran (anon_/file_/shmem_peak_kib likewise, each its
                   own maximum); rss_peak_any_kib over all phases
  rss_after_kib    last sample of the --after phase
  samples, cmd_rc, cmd_seconds, pid_alive (0 if PID vanished)
SIGTERM/SIGINT stop COMMAND too. Sampler and exit_on_signals are reused by vfs_stream.py.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


def mem_kib(pid):
    """{field: KiB} from /proc/PID/status, or None if the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in FIELDS:
                    out[key] = int(line.split()[1])
    except OSError:
        return None
    return out if "VmRSS" in out else None


def exit_on_signals():
    """SIGTERM/SIGINT raise SystemExit(128 + signal), so `finally:` blocks stop what was started."""

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


class Sampler:
    """Background thread sampling mem_kib(pid) every interval, tagged with the current phase."""

    def __init__(self, pid, interval, samples_path=None):
        self.pid = pid
        self.interval = interval
        self.phase = "before"
        self.samples = []  # (t, phase, {field: KiB})
        self.gone = False
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._lock = threading.Lock()  # the thread and sample_now() callers both append
        self._file = open(samples_path, "w") if samples_path else None
        if self._file:
            self._file.write("t_s\tphase\t" + "\t".join(f"{f}_kib" for f in FIELDS) + "\n")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def sample_now(self):
        m = mem_kib(self.pid)
        with self._lock:
            t = time.monotonic() - self._t0
            if m is None:
                self.gone = True
                return
            self.samples.append((t, self.phase, m))
            if self._file and not self._file.closed:
                self._file.write(f"{t:.2f}\t{self.phase}\t" + "\t".join(str(m.get(f, "")) for f in FIELDS) + "\n")

    def _run(self):
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sample_now()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start_during(self, before):
        """After `before` seconds of the "before" phase, start the "during" phase with a sample."""
        time.sleep(before)
        self.phase = "during"
        self.sample_now()

    def finish_during(self, after):
        """End the "during" phase with a sample, then `after` seconds of the "after" phase."""
        self.sample_now()
        self.phase = "after"
        time.sleep(after)

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sample_now()
        if self._file:
            with self._lock:
                self._file.close()

    def peak(self, field="VmRSS", phase=None):
        vals = [m.get(field, 0) for _, ph, m in self.samples if phase is None or ph == phase]
        return max(vals) if vals else None

    def last(self, field="VmRSS", phase=None):
        vals = [m.get(field, 0) for _, ph, m in self.samples if phase is None or ph == phase]
        return vals[-1] if vals else None

    def count(self, phase=None):
        return sum(1 for _, ph, _ in self.samples if phase is None or ph == phase)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--before", type=float, default=1.0)
    ap.add_argument("--after", type=float, default=1.0)
    ap.add_argument("--samples", help="TSV file for every sample")
    ap.add_argument("--cmd-out", default=os.devnull)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        print("vfs_rss.py: no command given (after --)", file=sys.stderr)
        return 2
    if mem_kib(args.pid) is None:
        print(f"vfs_rss.py: no process {args.pid}", file=sys.stderr)
        return 2

    child = None
    exit_on_signals()
    s = Sampler(args.pid, args.interval, args.samples).start()
    try:
        s.start_during(args.before)
        t0 = time.monotonic()
        with open(args.cmd_out, "w") as out:
            child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            rc = child.wait()
        cmd_s = time.monotonic() - t0
        s.finish_during(args.after)
    finally:
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
        s.stop()

    print(f"rss_before_kib={s.last(phase='before')}")
    for field, key in (("VmRSS", "rss"), ("RssAnon", "anon"), ("RssFile", "file"), ("RssShmem", "shmem")):
        print(f"{key}_peak_kib={s.peak(field, 'during')}")
    print(f"anon_before_kib={s.last('RssAnon', 'before')}")
    print(f"rss_peak_any_kib={s.peak()}")
    print(f"rss_after_kib={s.last(phase='after')}")
    print(f"samples={s.count()}")
    print(f"samples_during={s.count('during')}")
    print(f"cmd_rc={rc}")
    print(f"cmd_seconds={cmd_s:.2f}")
    print(f"pid_alive={0 if s.gone else 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
