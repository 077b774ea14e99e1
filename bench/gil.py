"""Event-loop lag while a worker thread reads a recipient list: the GIL starvation behind scenario 15.

    python -m bench.gil [--rows 100000] [--rounds 2]

An event loop samples its own lag (a task sleeping 10 ms, as scenario 15 does) while
``asyncio.to_thread`` runs, on a fresh CSV each time:

* ``index_list``: the product's own ``broadcaster.recipients.index_list`` (validate every
  phone with phonenumbers, count the list), as ``POST /api/preview`` and a fire's plan run it;
* ``csv over open()``: the same ``csv.reader`` loop over a text file with cheap pure-Python
  work per row instead of phonenumbers (is it phonenumbers, or the file?);
* ``csv over io.StringIO``: the same rows read into memory first;
* ``csv over open(), 1 MiB text chunks``: the file again, ``TextIOWrapper._CHUNK_SIZE`` 1 MiB;
* ``pure-Python CPU``: a thread that only computes for as long (the GIL's normal 5 ms hand-over).

Each line prints the worker's duration and the loop's lag p50 / p99 / max while it ran.
Nothing here changes broadcaster/: it only reproduces, in isolation, what scenario 15 measures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import write_recipients
from broadcaster.recipients import index_list

INTERVAL_S = 0.010


def _work(n: int = 700) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def csv_file(path: Path) -> None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for _row in csv.reader(handle):
            _work()


def csv_file_big_chunks(path: Path) -> None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        handle._CHUNK_SIZE = 1 << 20  # type: ignore[attr-defined]
        for _row in csv.reader(handle):
            _work()


def csv_memory(path: Path) -> None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        data = io.StringIO(handle.read())
    for _row in csv.reader(data):
        _work()


def product_index_list(path: Path) -> None:
    index_list(path)


def pure_cpu(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        _work(1000)


async def lag_while(fn: Callable[[Any], None], arg: Any) -> tuple[float, list[float]]:
    lags: list[float] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            before = time.monotonic()
            await asyncio.sleep(INTERVAL_S)
            lags.append(time.monotonic() - before - INTERVAL_S)

    sampler = asyncio.create_task(sample())
    await asyncio.sleep(0.2)
    lags.clear()
    start = time.monotonic()
    await asyncio.to_thread(fn, arg)
    took = time.monotonic() - start
    done.set()
    await sampler
    return took, sorted(lags)


def line(label: str, took: float, lags: list[float]) -> str:
    def q(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))] * 1000

    return (f"  {label:<38} worker {took:5.2f} s; loop lag over {len(lags):>4} samples: p50 {q(0.5):6.1f} ms, "
            f"p99 {q(0.99):7.1f} ms, max {lags[-1] * 1000:7.1f} ms")


async def main_async(rows: int, rounds: int) -> None:
    print(f"python {sys.version.split()[0]}, switch interval {sys.getswitchinterval() * 1000:.0f} ms, {rows:,} rows")
    with tempfile.TemporaryDirectory(prefix="bench-gil-") as tmp:
        n = 0
        for _ in range(rounds):
            for label, fn in (("index_list (the product's)", product_index_list),
                              ("csv over open()", csv_file),
                              ("csv over io.StringIO", csv_memory),
                              ("csv over open(), 1 MiB text chunks", csv_file_big_chunks)):
                n += 1
                path = write_recipients(Path(tmp) / f"list-{n}.csv", rows)  # a new file: never validated yet
                took, lags = await lag_while(fn, path)
                print(line(label, took, lags), flush=True)
            took, lags = await lag_while(pure_cpu, 1.5)
            print(line("pure-Python CPU, 1.5 s", took, lags), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gil", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.rows, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
