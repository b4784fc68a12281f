"""Rate and concurrency limits for LLM calls: one named limit shared by every agent.

    python examples/rate_limits.py

A stand-in "LLM" answers after a short delay and says how many tokens it used.
Agents on threads and tasks share one limit of requests and tokens per second
(a real API would say per minute; seconds keep the example short). The script
prints what each part showed and checks it: never more than the limit in any
one-second window, the limit used in full, and at most 3 calls in flight.
Runs offline in about 4 seconds; pass a Redis URL as the only argument to share
the limit through Redis instead (``python examples/rate_limits.py redis://localhost:6379/0``).
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time

from agentdiff_coordination import configure, coordinate, limit

REQUESTS, TOKENS = 20, 4000  # per second


def fake_llm(prompt: str, rng: random.Random) -> tuple[str, int]:
    """An LLM stand-in: an answer and the tokens it used, after a short delay."""
    time.sleep(0.01)
    return f"answer to {prompt!r}", rng.randint(50, 250)


def most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    most, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        most = max(most, j - i)
    return most


def threads_share_a_rate() -> None:
    api = limit("openai_api", requests=f"{REQUESTS}/s", rate=f"{TOKENS}/s")
    admitted: list[float] = []
    mutex = threading.Lock()

    def agent(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(6):
            with api(cost=200) as permit:  # 1 request, an estimate of 200 tokens
                _, used = fake_llm(f"question {i}", rng)
                permit.report(used)  # the real figure frees what the estimate held back
                with mutex:
                    admitted.append(permit.admitted_at)

    workers = [threading.Thread(target=agent, args=(seed,)) for seed in range(10)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    most = most_in_one_second(admitted)
    first = min(admitted)
    in_two = sum(1 for t in admitted if t < first + 2.0)
    print(f"1. 10 agent threads, 60 calls against {REQUESTS} requests/s and {TOKENS} tokens/s:")
    print(f"   most calls in any one-second window: {most} (limit {REQUESTS}); "
          f"first two seconds used {in_two} of {2 * REQUESTS}")
    assert most <= REQUESTS and in_two >= 0.95 * 2 * REQUESTS


def coordinated_steps_take_a_slot() -> None:
    limit("gpu", concurrency=3)
    in_flight, most = 0, 0
    mutex = threading.Lock()

    @coordinate("summarise", limit="gpu")
    def summarise(doc: int) -> str:
        nonlocal in_flight, most
        with mutex:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.02)
        with mutex:
            in_flight -= 1
        return f"summary {doc}"

    workers = [threading.Thread(target=summarise, args=(d,)) for d in range(12)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(f"2. @coordinate('summarise', limit='gpu') on 12 threads with concurrency=3: at most {most} at once")
    assert most == 3


async def tasks_wait_without_blocking() -> None:
    api = limit("openai_api")  # the name alone finds the limit declared above
    ticks = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def agent(i: int) -> float:
        async with api(cost=100) as permit:
            return permit.admitted_at

    beat = asyncio.create_task(heartbeat())
    times = await asyncio.gather(*(agent(i) for i in range(30)))
    done.set()
    await beat
    print(f"3. 30 async agents on one loop: most in any second {most_in_one_second(list(times))}, "
          f"and the loop ticked {ticks} times while they waited")
    assert most_in_one_second(list(times)) <= REQUESTS and ticks > 10


def bad_input_is_named() -> None:
    print("4. bad input is a clear error:")
    for rate in ("ten/min", "5/fortnight"):
        try:
            limit("broken", rate=rate)
        except ValueError as exc:
            print(f"   limit('broken', rate={rate!r}) -> ValueError: {str(exc)[:70]}...")
    try:
        limit("openai_api").acquire(cost=TOKENS + 1)
    except ValueError as exc:
        print(f"   cost {TOKENS + 1} -> ValueError: {str(exc)[:70]}...")


def main() -> None:
    if len(sys.argv) > 1:
        configure(sys.argv[1])
    threads_share_a_rate()
    coordinated_steps_take_a_slot()
    asyncio.run(tasks_wait_without_blocking())
    bad_input_is_named()
    print("All limits held.")


if __name__ == "__main__":
    main()
