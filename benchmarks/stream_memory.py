"""Peak memory of ``netreveal evaluate`` against the number of images: it stays flat, because
images are read, explained, scored and written shard by shard.

Each row runs ``netreveal evaluate --model demo --n N --method gradcam`` (parts-world images, 64 px)
in a child process and reads that child's peak resident set size from the kernel
(``os.wait4``: ``ru_maxrss`` of the child, which counts the largest of it and the image-reading
processes it waited for). The run folder and CSV go to a temporary folder.

    python benchmarks/stream_memory.py [--sizes 100,2000] [--shard-size 64] [--loader-workers 1]
        [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss(n: int, shard_size: int, loader_workers: int, steps: int, folder: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one ``evaluate`` of ``n`` parts-world images."""
    argv = [sys.executable, "-m", "netreveal.cli", "evaluate", "--model", "demo", "--n", str(n), "--method", "gradcam",
            "--steps", str(steps), "--shard-size", str(shard_size), "--loader-workers", str(loader_workers),
            "--quiet", "--csv", str(folder / f"n{n}.csv")]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"evaluate --n {n} failed: {proc.stderr.read().decode()[-400:]}")
    return usage.ru_maxrss / 1024, seconds  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,2000")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--loader-workers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="netreveal-stream-") as tmp:
        rows = [(n, *peak_rss(n, args.shard_size, args.loader_workers, args.steps, Path(tmp))) for n in sizes]
    print(f"evaluate --model demo --method gradcam --steps {args.steps} --shard-size {args.shard_size} "
          f"--loader-workers {args.loader_workers}")
    print(f"{'images':>7}  {'peak RSS (MiB)':>14}  {'vs first':>8}  {'wall s':>7}")
    for n, mib, seconds in rows:
        print(f"{n:>7}  {mib:>14.1f}  {100 * (mib / rows[0][1] - 1):>+7.1f}%  {seconds:>7.1f}")


if __name__ == "__main__":
    main()
