"""Instructions per awaited update_policy and per awaited PUBLISH, counted by callgrind.

Run (needs ``valgrind`` and ``redis-server`` on ``PATH``)::

    python benchmarks/instructions.py

The side-by-side ``update-throughput`` group times both in one run, but on a
shared two-core machine its ratio moves by about ±0.05 between runs. An
instruction count does not: valgrind's callgrind counts what the client process
executes, whatever else the machine is doing. Each side runs in its own process
under callgrind, exactly as in that group (one store with its listener on the
same loop; PUBLISH on the store's channel, so the listener handles both sides'
messages), once with ``SMALL`` and once with ``LARGE`` calls; the difference
divided by ``LARGE - SMALL`` is the cost of one call without start-up.

It counts instructions, not time: the server's work (the script runs in Redis)
and waiting are not in it, and an instruction is not a fixed time. It is a
repeatable figure for the client-side cost of the update path, next to the
timed one.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from typing import Final

import redis.asyncio

from pytest_quantum_p1._clock import VirtualClock
from pytest_quantum_p1._redis.server import spawn_redis_server
from reference_impl.p1_target import TARGET

SMALL: Final = 200
LARGE: Final = 1200
NAME: Final = "orchestrator"
POLICY: Final = {"mode": "normal", "max_leverage": 3, "symbols": ["BTC", "ETH"]}


async def _calls(side: str, calls: int, url: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    store = TARGET.store_factory(redis.asyncio.Redis.from_url(url), VirtualClock())
    await store.initialize()
    await store.update_policy(NAME, POLICY)  # loads the script: every later call is EVALSHA
    for version in range(calls):
        if side == "publish":
            await client.publish(TARGET.invalidation_channel, NAME)
        else:
            await store.update_policy(NAME, {**POLICY, "version": version})
    await store.close()
    await client.aclose()


def _count(side: str, calls: int, url: str) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            side,
            str(calls),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(found.group(1))


def main() -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH (apt-get install valgrind)")
    per_call = {}
    with spawn_redis_server() as server:
        for side in ("publish", "update_policy"):
            small, large = _count(side, SMALL, server.url), _count(side, LARGE, server.url)
            per_call[side] = (large - small) / (LARGE - SMALL)
            print(f"{side:>14}: {per_call[side]:>9,.0f} instructions per awaited call")
    ratio = per_call["publish"] / per_call["update_policy"]
    print(f"publish / update_policy: {ratio:.3f} (the throughput ratio if both ran at one speed)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(_calls(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    else:
        main()
