"""Walking a target's source roots: which directories are entered and which files are modules.

Shared by the import scan and the removed-files check, so both look at the
same tree: caches, hidden directories and virtual environments are skipped.
One ``os.scandir`` per directory, no ``Path`` per file and no path resolution
per file (the root is resolved once): on a 2,400-file tree the walk is a small
part of the scan, which it was not with ``os.walk`` and ``realpath``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NamedTuple

__all__ = ["ModuleFile", "module_files", "python_files"]

_SKIP_DIRS: Final = frozenset({"__pycache__", "site-packages", "node_modules"})
# A directory holding one of these is a virtualenv or conda env, whatever its name.
_ENV_MARKER_FILES: Final = frozenset({"pyvenv.cfg"})
_ENV_MARKER_DIRS: Final = frozenset({"conda-meta"})


class ModuleFile(NamedTuple):
    """One ``.py`` file under a root: where it is, its dotted name, and its real path."""

    path: str
    module: str
    #: The file's resolved path, so overlapping roots and symlinks count a file once.
    key: str


def module_files(root: Path) -> Iterator[ModuleFile]:
    """Every ``.py`` file under a package root (or the root itself, a ``.py`` file).

    In ``os.walk``'s top-down sorted order: a directory's files, then its
    subdirectories. Symlinked directories are not entered (as ``os.walk``).
    """
    if root.is_file():
        if root.suffix == ".py":
            yield ModuleFile(str(root), root.stem, os.path.realpath(root))
        return
    # The root is a package directory, so names start with its own name (even
    # when the root is given as ".").
    top = Path(os.path.abspath(root)).name
    yield from _walk(str(root), os.path.realpath(root), top, is_root=True)


def _walk(directory: str, real: str, package: str, is_root: bool) -> Iterator[ModuleFile]:
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except OSError:
        return  # as os.walk: an unreadable directory is skipped
    files: list[tuple[str, bool]] = []
    dirs: list[tuple[str, bool]] = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            dirs.append((entry.name, entry.is_symlink()))
        else:
            files.append((entry.name, entry.is_symlink()))
    if not is_root and (
        _ENV_MARKER_FILES.intersection(name for name, _ in files)
        or _ENV_MARKER_DIRS.intersection(name for name, _ in dirs)
    ):
        return
    files.sort()
    for name, is_link in files:
        if not name.endswith(".py") or name.startswith("."):
            continue
        path = os.path.join(directory, name)
        module = package if name == "__init__.py" else f"{package}.{name[:-3]}"
        key = os.path.realpath(path) if is_link else os.path.join(real, name)
        yield ModuleFile(path, module, key)
    dirs.sort()
    for name, is_link in dirs:
        if name.startswith(".") or name in _SKIP_DIRS or is_link:
            continue
        yield from _walk(
            os.path.join(directory, name), os.path.join(real, name), f"{package}.{name}", False
        )


def python_files(root: Path) -> Iterator[tuple[Path, str]]:
    """``(path, dotted module name)`` of every ``.py`` file under a package root."""
    for found in module_files(root):
        yield Path(found.path), found.module
