#!/usr/bin/env python3
"""Generate the site directories of bench/bench_vfs.sh (random, incompressible bytes).

    vfs_gen.py DIR COUNT MIN_BYTES MAX_BYTES [--seed S] [--name FMT]

Writes COUNT files named FMT % i (default "%05d.bin", i = 0..COUNT-1) into DIR, each with a size
drawn uniformly from [MIN_BYTES, MAX_BYTES] by random.Random(seed) (so a rerun with the same seed
gives the same sizes; the contents come from os.urandom). Prints key=value lines: files, bytes.
"""

import argparse
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("count", type=int)
    ap.add_argument("min_bytes", type=int)
    ap.add_argument("max_bytes", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--name", default="%05d.bin")
    args = ap.parse_args()
    if args.count < 1 or not 0 <= args.min_bytes <= args.max_bytes:
        print("vfs_gen.py: need COUNT >= 1 and 0 <= MIN_BYTES <= MAX_BYTES", file=sys.stderr)
        return 2

    os.makedirs(args.dir, exist_ok=True)
    rnd = random.Random(args.seed)
    total = 0
    for i in range(args.count):
        size = rnd.randint(args.min_bytes, args.max_bytes)
        with open(os.path.join(args.dir, args.name % i), "wb") as f:
            left = size
            while left:  # at most 8 MiB of random bytes in memory at a time
                n = min(left, 8 << 20)
                f.write(os.urandom(n))
                left -= n
        total += size
    print(f"files={args.count}")
    print(f"bytes={total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
