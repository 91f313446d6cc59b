"""What importers and exporters share: safe paths, image listing, export items."""

from __future__ import annotations

import enum
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewfinder.core.types import SourceSample
from viewfinder.errors import Problem

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

MAX_ANNOTATION_BYTES = 2 * 1024**3
"""Annotation files larger than this are refused (a JSON/XML bomb guard)."""


class UnsafePath(ValueError):
    """A name from a source file points outside the source root."""


_REAL_DIRS: dict[tuple[str, int, int], str] = {}


def _real_dir(d: str) -> str:
    """``os.path.realpath(d)``, cached by the directory's identity (device, inode).

    A directory replaced by a symlink or another directory has another identity, so the
    cache never answers for a path whose meaning changed.
    """
    try:
        st = os.lstat(d)
    except OSError:
        return os.path.realpath(d)
    key = (d, st.st_dev, st.st_ino)
    real = _REAL_DIRS.get(key)
    if real is None:
        if len(_REAL_DIRS) > 100_000:
            _REAL_DIRS.clear()
        real = _REAL_DIRS[key] = os.path.realpath(d)
    return real


def safe_join(root: Path, name: str) -> Path:
    """Join a file name taken from an annotation file to ``root``, refusing escapes.

    Refuses absolute paths, drive letters, ``..`` components, NUL bytes and symlinks that
    resolve outside ``root``. Backslashes are treated as separators (Windows exports).
    Costs about two system calls per name (folder real paths are cached).

    Raises:
        UnsafePath: with a message suitable for a ``Problem``.
    """
    if not name or "\x00" in name:
        raise UnsafePath(f"empty or NUL-containing file name {name!r}")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafePath(f"absolute file name {name!r} is not allowed")
    parts = [p for p in norm.split("/") if p not in (".", "")]
    if ".." in parts:
        raise UnsafePath(f"file name {name!r} escapes the source folder")
    root_s = os.fspath(root)
    candidate = os.path.join(root_s, *parts) if parts else root_s
    real_root = _real_dir(root_s)
    parent, base = os.path.split(candidate)
    real = (os.path.realpath(candidate) if os.path.islink(candidate)
            else os.path.join(_real_dir(parent), base))
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise UnsafePath(f"file name {name!r} resolves outside the source folder")
    return Path(candidate)


def export_join(out: Path, name: str) -> Path:
    """Join a sample key to an export folder, refusing names that would escape it.

    Lexical only (no symlink resolution): the export folder is a fresh temporary folder
    that only the exporter writes, and keys were checked when they were imported.

    Raises:
        UnsafePath: an absolute name or a ``..`` component.
    """
    norm = name.replace("\\", "/")
    if not norm or "\x00" in norm or norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafePath(f"cannot export to {name!r}: not a relative path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafePath(f"cannot export to {name!r}: it escapes the export folder")
    return Path(os.path.join(os.fspath(out), *parts))


def find_image(root: Path, name: str, folders: list[str]) -> Path | None:
    """The first existing file ``<folder>/<name>`` under ``root`` (``""`` is the root
    itself), or None. Every candidate goes through :func:`safe_join`.

    Raises:
        UnsafePath: ``name`` is absolute or escapes ``root``.
    """
    safe_join(root, name)  # refuses absolute names and ``..`` up front
    for folder in folders:
        path = safe_join(root, f"{folder}/{name}" if folder else name)
        if path.is_file():
            return path
    return None


def image_key(root: Path, image_root: Path, path: Path) -> str:
    """A sample's key: its path relative to the format's image folder, else to the root."""
    try:
        return path.relative_to(image_root).as_posix()
    except ValueError:
        return path.relative_to(root).as_posix()


def iter_images(folder: Path) -> Iterator[Path]:
    """Image files under ``folder``, recursively, in sorted (deterministic) order."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for f in sorted(filenames):
            if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / f


def read_json(path: Path, root: Path, problems: list[Problem]) -> Any | None:
    """Parse a JSON file; on failure add a Problem naming it and return None."""
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        if path.stat().st_size > MAX_ANNOTATION_BYTES:
            problems.append(Problem(rel, "annotation file is too large"))
            return None
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        problems.append(Problem(rel, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"))
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(rel, f"cannot read: {e}"))
    return None


class ImagesMode(str, enum.Enum):
    COPY = "copy"
    LINK = "link"
    NONE = "none"


@dataclass
class ExportItem:
    """One sample to export: its labels (as ``SourceSample``) and its image's hash.

    ``sample.key`` is the path the image gets inside the export (exporters may put it under
    a format-specific folder), ``sample.width``/``height`` are the stored image size.
    """

    sample: SourceSample
    content_hash: str


class ImageWriter:
    """Places images into an export: copy, symlink, or nothing.

    With ``background=True`` placement runs on a thread, so the kernel creates image
    files while the exporter writes annotation files into other folders (file creation,
    not Python, is what an export of many small files waits on); then call
    :meth:`finish` at the end: it waits and re-raises the first error.

    Args:
        source_path: maps a content hash to a local file path of the image (the blob).
        mode: copy, link or none.
        background: place images on a background thread.
    """

    def __init__(self, source_path: Callable[[str], str], mode: ImagesMode, *,
                 background: bool = False) -> None:
        self._source_path = source_path
        self.mode = ImagesMode(mode)
        self.background = background
        self._made: set[str] = set()
        self._pool: Any = None
        self._pending: list[Any] = []

    def place(self, content_hash: str, dest: Path) -> None:
        if self.mode is ImagesMode.NONE:
            return
        if not self.background:
            self._place(content_hash, os.fspath(dest))
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vf-images")
        self._pending.append(self._pool.submit(self._place, content_hash, os.fspath(dest)))

    def _place(self, content_hash: str, dest: str) -> None:
        parent = os.path.dirname(dest)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        src = self._source_path(content_hash)
        if os.path.lexists(dest):
            os.unlink(dest)
        if self.mode is ImagesMode.LINK:
            os.symlink(src, dest)
        else:
            shutil.copyfile(src, dest)

    def finish(self) -> None:
        """Wait for every image; raise the first error."""
        try:
            for fut in self._pending:
                fut.result()
        finally:
            self._pending = []
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None


def dump_json(obj: Any) -> bytes:
    """Deterministic JSON for exports: sorted keys, no NaN, trailing newline."""
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False,
                       separators=(",", ":")) + "\n").encode()


# EXIF orientations 5–8 swap width and height.
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image as displayed (EXIF orientation applied).

    Reads the header only, no full decode.

    Raises:
        ValueError: the file is not an image Pillow can identify.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                orientation = im.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not hide the size
                orientation = 1
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"not a readable image: {e}") from e
    return (h, w) if orientation in _TRANSPOSED_ORIENTATIONS else (w, h)
