"""How much ``-p quantum_p1`` adds to pytest's start-up (the plugin issue's <= 1.10x).

Times ``pytest --co -q`` on a one-test file with and without the plugin,
alternating, with plugin autoload off for both, and prints the medians and
their ratio. Run from the repository root::

    python benchmarks/load_time.py [RUNS]

``PYTHONDONTWRITEBYTECODE=1`` is set for the children, as this machine's shell
may set it: delete ``pytest_quantum_p1/__pycache__`` first to measure without
cached bytecode (an editable install), keep it to measure as a normal
``pip install`` (which writes bytecode) would.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(args: list[str], cwd: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", *args, "test_one.py"],
        cwd=cwd,
        env=env,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def main(runs: int) -> None:
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "test_one.py").write_text("def test_one():\n    pass\n")
        without, with_plugin = [], []
        for _ in range(runs):
            without.append(_run([], folder, env))
            with_plugin.append(_run(["-p", "quantum_p1"], folder, env))
    base, plugin = statistics.median(without), statistics.median(with_plugin)
    print(f"without {base * 1000:.1f} ms, with -p quantum_p1 {plugin * 1000:.1f} ms")
    print(f"ratio {plugin / base:.3f} (median of {runs} alternating runs; budget 1.10)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
