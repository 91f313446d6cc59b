"""Small file helpers shared by the folder-based formats (YOLO, VOC, image folder).

Private to ``viewfinder.formats``: every function takes the source ``root`` and the
importer's ``problems`` list, and reports instead of raising.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from viewfinder.errors import InvalidInput, Problem
from viewfinder.formats.base import MAX_ANNOTATION_BYTES, UnsafePath, export_dest, iter_images, safe_join

SPLIT_ALIASES = {"valid": "val", "validation": "val"}
"""Split names that mean ``val`` (Roboflow writes ``valid``)."""


def check_root(root: Path) -> None:
    """Raise ``InvalidInput`` unless ``root`` is a folder (the one error importers raise)."""
    if not root.is_dir():
        raise InvalidInput(f"not a folder: {root}", path=str(root))


def rel(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (for ``Problem.path``)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def walk_images(root: Path, folder: Path, problems: list[Problem]) -> Iterator[Path]:
    """Image files under ``folder`` in sorted order, skipping hidden entries.

    Each file is checked with ``safe_join``, so a symlink that leads outside ``root``
    becomes a ``Problem`` instead of a sample.
    """
    for path in iter_images(folder):
        name = rel(root, path)
        if any(part.startswith(".") for part in Path(name).parts):
            continue
        try:
            safe_join(root, name)
        except UnsafePath as e:
            problems.append(Problem(name, str(e)))
            continue
        yield path


def read_text(path: Path, root: Path, problems: list[Problem]) -> str | None:
    """The text of a small annotation file (UTF-8, BOM allowed); ``None`` and a Problem on failure."""
    try:
        if path.stat().st_size > MAX_ANNOTATION_BYTES:
            problems.append(Problem(rel(root, path), "annotation file is too large"))
            return None
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        problems.append(Problem(rel(root, path), f"cannot read: not UTF-8 text ({e.reason} at byte {e.start})"))
    except OSError as e:
        problems.append(Problem(rel(root, path), f"cannot read: {e.strerror or e}"))
    return None


def export_classes(classes: list[str], used: list[str]) -> list[str]:
    """``classes`` plus any class used by a label but missing from it (sorted, at the end)."""
    known = set(classes)
    return list(classes) + sorted({c for c in used if c not in known})


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, creating parent folders."""
    try:
        f = open(path, "wb")
    except FileNotFoundError:  # first file of its folder
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "wb")
    with f:
        f.write(data)


def out_path(out: Path, name: str) -> Path:
    """``out / name`` for an exported file, refusing names that would escape ``out`` (the
    ``Path`` form of :func:`base.export_dest`)."""
    return Path(export_dest(os.fspath(out), name))


def strip_ext(name: str) -> str:
    """``name`` without its last extension (``a/b.c.jpg`` → ``a/b.c``)."""
    head, ext = os.path.splitext(name)
    return head if ext else name
