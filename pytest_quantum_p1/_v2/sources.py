"""Walking a target's source roots: which directories are entered and which files are modules.

Shared by the import scan and the removed-files check, so both look at the
same tree: caches, hidden directories and virtual environments are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["python_files", "walk"]

_SKIP_DIRS: Final = frozenset({"__pycache__", "site-packages", "node_modules"})
# A directory holding one of these is a virtualenv or conda env, whatever its name.
_ENV_MARKER_FILES: Final = frozenset({"pyvenv.cfg"})
_ENV_MARKER_DIRS: Final = frozenset({"conda-meta"})


def walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``os.walk`` in sorted order, pruning caches, hidden dirs and environments."""
    for dirpath, dirnames, filenames in os.walk(root):
        current = Path(dirpath)
        if current != root and (
            _ENV_MARKER_FILES.intersection(filenames) or _ENV_MARKER_DIRS.intersection(dirnames)
        ):
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        filenames.sort()
        yield current, dirnames, filenames


def python_files(root: Path) -> Iterator[tuple[Path, str]]:
    """``(path, dotted module name)`` of every ``.py`` file under a package root."""
    if root.is_file():
        if root.suffix == ".py":
            yield root, root.stem
        return
    # The root is a package directory, so names start with its own name (even
    # when the root is given as ".").
    top = (Path(os.path.abspath(root)).name,)
    for current, _dirs, filenames in walk(root):
        package = top + current.relative_to(root).parts
        for name in filenames:
            if not name.endswith(".py") or name.startswith("."):
                continue
            parts = package if name == "__init__.py" else (*package, name[:-3])
            yield current / name, ".".join(parts)
