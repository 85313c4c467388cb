"""P1-3 checks: nothing but the bridge reaches federation v2, statically or at run time.

- :mod:`.modules`: dotted module names (membership, relative imports, the bridges named,
  ``ignore_imports`` entries);
- :mod:`.sources`: walking a target's source roots (dirs entered, files that are modules);
- :mod:`.imports`: the v2 imports of one parsed module (the AST walk, ``HOW_*``);
- :mod:`.prefilter`: which files need parsing at all (a text test that keeps every file
  with a finding);
- :mod:`.scan`: the static check over the source roots (:func:`scan_v2_usage`, its result,
  its message);
- :mod:`.files`: the legacy files are gone where they lived (:func:`check_removed`,
  :func:`homeless`), the docs carry the notice (:func:`check_docs`);
- :mod:`.patch`: one recording ``__new__`` per watched class, and the class given back;
- :mod:`.guard`: the run-time check (:class:`V2Guard`: who constructs the v2 engine class;
  :func:`engines_held_by`, :func:`load_engine_class`);
- :mod:`.warning`: where a construction's ``warnings.warn`` calls sit (:func:`construct_traced`,
  through the adapter's engine factory too), so a misplaced DeprecationWarning gets advice
  the evidence supports.

Usable without pytest: beyond the standard library they import only the harness's texts
(and the ``module:attr`` resolver, once the guard is given a spec). The plugin imports
this package lazily. Re-exported below: the names the rest of the harness (plugin,
acceptance checks, public face, tests) uses.
"""

from __future__ import annotations

from pytest_quantum_p1._v2.files import check_docs, check_removed, homeless
from pytest_quantum_p1._v2.guard import (
    V2Construction,
    V2Guard,
    engines_held_by,
    format_runtime_violations,
    load_engine_class,
)
from pytest_quantum_p1._v2.imports import (
    HOW_DUNDER_IMPORT,
    HOW_FROM,
    HOW_IMPORT,
    HOW_IMPORT_MODULE,
)
from pytest_quantum_p1._v2.modules import bridge_list, within
from pytest_quantum_p1._v2.scan import (
    V2FileError,
    V2ScanResult,
    V2Unresolved,
    V2Violation,
    format_violations,
    scan_target_rules,
    scan_v2_usage,
)
from pytest_quantum_p1._v2.sources import python_files
from pytest_quantum_p1._v2.warning import ConstructionNotSeen, Traced, WarnCall, construct_traced

__all__ = [
    "HOW_DUNDER_IMPORT",
    "HOW_FROM",
    "HOW_IMPORT",
    "HOW_IMPORT_MODULE",
    "ConstructionNotSeen",
    "Traced",
    "V2Construction",
    "V2FileError",
    "V2Guard",
    "V2ScanResult",
    "V2Unresolved",
    "V2Violation",
    "WarnCall",
    "bridge_list",
    "check_docs",
    "check_removed",
    "construct_traced",
    "engines_held_by",
    "format_runtime_violations",
    "format_violations",
    "homeless",
    "load_engine_class",
    "python_files",
    "scan_target_rules",
    "scan_v2_usage",
    "within",
]
