"""The P1-3 static scan side by side with import-linter, on the same 2,400-file tree and rule.

Run (the ``bench`` extra installs import-linter, Django and sympy)::

    pip install -e '.[test,bench]' -c constraints.txt
    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -p pytest_benchmark.plugin \\
        benchmarks/bench_scanner.py --benchmark-json=scanner.json

The tree is the installed ``django`` and ``sympy`` packages (2,417 ``.py``
files with Django 5.2 and sympy 1.14). The rule, both ways: nothing outside
``django.db.models`` imports ``django.db.models.sql`` or ``sympy.parsing`` —
import-linter's ``protected`` contract (``protected_modules``,
``allowed_importers``), the scan's ``v2_modules`` and ``bridge_modules``.

- *import-linter*, cold: ``grimp.build_graph("django", "sympy", cache_dir=None)``
  then the contract's ``check`` — what ``lint-imports --no-cache`` does,
  without reading its configuration or printing (which would only add to its time).
- *the scan*: ``scan_v2_usage(..., parse_all=False)``, what the criterion runs.

Their rounds alternate (import-linter runs as pytest-benchmark's ``setup`` of
each round of the scan, timed here), so load drifting on a shared machine
weighs on both alike; the ratio is the scan's median round over
import-linter's. ``test_scanner_is_as_fast_as_import_linter`` asserts it is at
most 1.0 and that both found the same imports: import-linter's illegal
``(importer, line)`` pairs are the scan's static violations (``import`` and
``from``); what the scan finds beyond them (imports through
``importlib.import_module`` with a literal name, dynamic imports it cannot
resolve) is reported beside. The figures (also in the benchmark's
``extra_info``) include each side's CPU time: grimp parses on several threads,
the scan on one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_quantum_p1._v2 import HOW_FROM, HOW_IMPORT, V2ScanResult, scan_v2_usage

grimp = pytest.importorskip("grimp", reason="the bench extra: pip install -e '.[bench]'")
protected = pytest.importorskip("importlinter.contracts.protected")
django = pytest.importorskip("django")
sympy = pytest.importorskip("sympy")

PACKAGES = ("django", "sympy")
PROTECTED = ("django.db.models.sql", "sympy.parsing")
ALLOWED = ("django.db.models",)
ROUNDS = 7
MIN_FILES = 2000

Links = set[tuple[str, int]]


def _roots() -> list[Path]:
    return [Path(django.__file__).parent, Path(sympy.__file__).parent]


def _import_linter() -> Links:
    """Build the graph cold and check the protected contract; the illegal (importer, line) pairs."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    contract = protected.ProtectedContract(
        name="v2 is protected",
        session_options={"root_packages": list(PACKAGES)},
        contract_options={
            "protected_modules": list(PROTECTED),
            "allowed_importers": list(ALLOWED),
        },
    )
    check = contract.check(graph, verbose=False)
    return {
        (link["importer"], line)
        for broken in check.metadata["illegal_imports"]
        for link in broken.illegal_links
        for line in link["line_numbers"]
        if line is not None
    }


def _scan() -> V2ScanResult:
    return scan_v2_usage(_roots(), PROTECTED, ALLOWED, parse_all=False)


def _static(result: V2ScanResult) -> Links:
    return {(v.importer, v.line) for v in result.violations if v.how in (HOW_IMPORT, HOW_FROM)}


def _timed(function: Callable[[], Any], times: list[float], cpu: list[float]) -> Callable[[], Any]:
    def run() -> Any:
        start, start_cpu = time.perf_counter(), time.process_time()
        value = function()
        times.append(time.perf_counter() - start)
        # The process's CPU time: all of grimp's threads, the scan's one.
        cpu.append(time.process_time() - start_cpu)
        return value

    return run


def test_scanner_is_as_fast_as_import_linter(benchmark: Any) -> None:
    """The scan takes at most import-linter's time on the same tree and rule, finding the same."""
    files = _scan().files_scanned
    assert files >= MIN_FILES, f"the tree has {files} files, fewer than {MIN_FILES}"
    theirs: list[float] = []
    ours: list[float] = []
    their_cpu: list[float] = []
    our_cpu: list[float] = []
    their_links: list[Links] = []
    timed_theirs = _timed(_import_linter, theirs, their_cpu)

    def setup() -> None:
        their_links.append(timed_theirs())

    result: V2ScanResult = benchmark.pedantic(
        _timed(_scan, ours, our_cpu), setup=setup, rounds=ROUNDS, warmup_rounds=1
    )
    # The warm-up round ran both once more: compare the timed rounds only.
    theirs, ours = theirs[-ROUNDS:], ours[-ROUNDS:]
    ratio = statistics.median(ours) / statistics.median(theirs)
    figures = {
        "files": files,
        "scan_median_s": round(statistics.median(ours), 3),
        "import_linter_median_s": round(statistics.median(theirs), 3),
        "scan_files_per_s": round(files / statistics.median(ours)),
        "import_linter_files_per_s": round(files / statistics.median(theirs)),
        "ratio": round(ratio, 3),
        "scan_cpu_median_s": round(statistics.median(our_cpu[-ROUNDS:]), 3),
        "import_linter_cpu_median_s": round(statistics.median(their_cpu[-ROUNDS:]), 3),
        "static_violations": len(_static(result)),
        "dynamic_violations": len(result.violations) - len(_static(result)),
        "unresolved": len(result.unresolved),
        "scan_rounds_s": [round(t, 3) for t in ours],
        "import_linter_rounds_s": [round(t, 3) for t in theirs],
    }
    benchmark.extra_info.update(figures)
    print("\nscanner vs import-linter:", figures)
    assert not result.errors
    assert _static(result) == their_links[-1], (
        sorted(_static(result) - their_links[-1]),
        sorted(their_links[-1] - _static(result)),
    )
    assert ratio <= 1.0, figures
