"""Instructions per operation of the core's hot paths, counted by callgrind (the same
count whatever else the machine does), so two versions compare exactly.

    python benchmarks/count_instructions.py                 # this checkout
    PYTHONPATH=/path/to/other/checkout python benchmarks/count_instructions.py

Each figure is (instructions for N operations - instructions for none) / N. Needs valgrind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

N = 20_000

WORKLOAD = r"""
import asyncio, sys, threading
from agentdiff_coordination import coordinate, lock
mode, n = sys.argv[1], int(sys.argv[2])
named, raw = lock("x"), threading.Lock()

@coordinate("c", lock_name="y")
def co():
    return 1

@coordinate("ac", lock_name="z")
async def aco():
    return 1

co()
if mode == "threading.Lock":
    for _ in range(n):
        with raw:
            pass
elif mode == "with lock()":
    for _ in range(n):
        with named:
            pass
elif mode == "@coordinate sync":
    for _ in range(n):
        co()
else:
    async def main():
        if mode == "@coordinate async":
            for _ in range(n):
                await aco()
        elif mode == "async with lock()":
            for _ in range(n):
                async with named:
                    pass
        else:  # 200 tasks contending
            lk = asyncio.Lock() if mode == "200 tasks, asyncio.Lock" else lock("contended")

            async def worker(k):
                for _ in range(k):
                    async with lk:
                        await asyncio.sleep(0)

            if n:
                await asyncio.gather(*(worker(n // 200) for _ in range(200)))
    asyncio.run(main())
"""

MODES = ("threading.Lock", "with lock()", "@coordinate sync", "@coordinate async", "async with lock()",
         "200 tasks, asyncio.Lock", "200 tasks, lock()")


def count(mode: str, n: int) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", WORKLOAD, mode, str(n)],
        capture_output=True, text=True, env=os.environ,
    )
    for line in done.stderr.splitlines():
        if "Collected" in line:
            return int(line.split()[-1])
    raise SystemExit(f"callgrind gave no count for {mode!r}:\n{done.stderr[-2000:]}")


def main() -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    for mode in MODES:
        print(f"{mode:<26} {(count(mode, N) - count(mode, 0)) / N:10,.0f} instructions per operation")


if __name__ == "__main__":
    main()
