"""What importers and exporters share: safe paths, image listing, export items."""

from __future__ import annotations

import contextlib
import enum
import errno
import json
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, overload

from viewfinder.core.types import LabelKind, SourceSample
from viewfinder.errors import InvalidInput, Problem

if TYPE_CHECKING:
    import pyarrow as pa

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


def export_relpath(name: str) -> str:
    """A sample key as a normalized relative POSIX path inside an export folder.

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
    return "/".join(parts)


def export_dest(out: str, name: str) -> str:
    """``out/name`` for a file of an export, as a string (see :func:`export_relpath`).

    Raises:
        InvalidInput: ``name`` is absolute or would leave ``out``.
    """
    try:
        return f"{out}/{export_relpath(name)}"
    except UnsafePath as e:
        raise InvalidInput(f"cannot export {name!r}: {e}", path=name) from None


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


def read_json(path: Path, root: Path, problems: list[Problem],
              parse: Callable[[str], Any] = json.loads) -> Any | None:
    """Parse a JSON file (its text, with ``parse``); on failure add a Problem naming it and
    return None."""
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        if path.stat().st_size > MAX_ANNOTATION_BYTES:
            problems.append(Problem(rel, "annotation file is too large"))
            return None
        with open(path, "rb") as f:
            raw = f.read()
        # what json.load does, without holding the file's bytes next to the decoded text
        # while parsing (a COCO file of a million annotations: 125 MB less at the peak)
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        del raw
        return parse(text)
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


@dataclass(frozen=True)
class ExportTables:
    """The samples and labels of an export as Arrow tables, in export order.

    ``samples`` has one row per sample in key order, with at least ``key``,
    ``content_hash``, ``width``, ``height`` and ``split``. ``labels`` has one row per label,
    grouped by sample in that order and in a fixed order within a sample, with at least
    ``sample_index`` (the sample's row in ``samples``), ``kind``, ``class_name``, ``x``,
    ``y``, ``w``, ``h`` (the box; null when there is none), ``polygon`` (list of rings)
    and ``mask`` (COCO RLE as JSON text). Tables read from storage carry every stored
    column (``storage.schema``); :meth:`from_items` gives just these.

    Exporters that work on columns (YOLO) read these directly: building a Python object
    per label costs more than writing the whole export.
    """

    samples: pa.Table
    labels: pa.Table

    def label_bounds(self) -> list[int]:
        """``bounds[i]:bounds[i + 1]`` are the rows of sample ``i``'s labels."""
        import numpy as np

        index = self.labels.column("sample_index").to_numpy()
        return np.searchsorted(index, np.arange(self.samples.num_rows + 1)).tolist()

    @classmethod
    def from_items(cls, items: Sequence[ExportItem]) -> ExportTables:
        """The tables of ``items`` (sorted by key, the way storage hands them over)."""
        import pyarrow as pa

        order = sorted(items, key=lambda it: it.sample.key)
        samples = pa.table({
            "key": pa.array([it.sample.key for it in order], pa.string()),
            "content_hash": pa.array([it.content_hash for it in order], pa.string()),
            "width": pa.array([it.sample.width for it in order], pa.int32()),
            "height": pa.array([it.sample.height for it in order], pa.int32()),
            "split": pa.array([it.sample.split for it in order], pa.string()),
        })
        rows: list[tuple[Any, ...]] = []
        for i, it in enumerate(order):
            for lab in it.sample.labels:
                kind = LabelKind(lab.kind)
                box = lab.bbox if kind is not LabelKind.CLASSIFICATION else None
                x, y, w, h = (float(v) for v in box) if box is not None else (None,) * 4
                rows.append((i, kind.value, lab.class_name, x, y, w, h,
                             [[float(v) for v in r] for r in lab.polygon] if lab.polygon else None,
                             _mask_json(lab.mask) if lab.mask else None))
        names = ["sample_index", "kind", "class_name", "x", "y", "w", "h", "polygon", "mask"]
        types = [pa.int32(), pa.string(), pa.string(), *[pa.float64()] * 4,
                 pa.list_(pa.list_(pa.float64())), pa.string()]
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        labels = pa.table({n: pa.array(c, t) for n, c, t in zip(names, columns, types, strict=True)})
        return cls(samples, labels)


def _mask_json(mask: dict[str, Any]) -> str:
    """A COCO RLE as JSON text (compressed ``counts`` as bytes become ASCII text)."""
    counts = mask.get("counts")
    if isinstance(counts, bytes):
        mask = {**mask, "counts": counts.decode("ascii")}
    return json.dumps(mask, sort_keys=True)


class ExportItems(Sequence[ExportItem]):
    """The items of an export read from storage: a sequence of :class:`ExportItem`, built
    on first use, that also hands its :attr:`tables` to exporters that work on columns.

    Args:
        tables: every stored column of the samples and labels (see :class:`ExportTables`).
    """

    def __init__(self, tables: ExportTables) -> None:
        self.tables = tables
        self._items: list[ExportItem] | None = None

    def _built(self) -> list[ExportItem]:
        if self._items is None:
            from viewfinder.storage.rows import sample_from_row

            samples = self.tables.samples.to_pylist()
            labels = self.tables.labels.to_pylist()
            bounds = self.tables.label_bounds()
            self._items = [ExportItem(sample_from_row(s, labels[bounds[i]:bounds[i + 1]]),
                                      s["content_hash"]) for i, s in enumerate(samples)]
        return self._items

    def __len__(self) -> int:
        return self.tables.samples.num_rows

    @overload
    def __getitem__(self, i: int) -> ExportItem: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[ExportItem]: ...

    def __getitem__(self, i: int | slice) -> ExportItem | Sequence[ExportItem]:
        return self._built()[i]

    def __iter__(self) -> Iterator[ExportItem]:
        return iter(self._built())


def export_tables(items: Sequence[ExportItem]) -> ExportTables:
    """The columns of ``items``: read from storage, or built from the objects."""
    return items.tables if isinstance(items, ExportItems) else ExportTables.from_items(items)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _replacing(dest: str, make: Callable[[], Any]) -> Any:
    """``make()``, which creates ``dest``; a file or link already at ``dest`` is replaced,
    never followed (so nothing is written through a link into the store)."""
    try:
        return make()
    except FileExistsError:
        os.unlink(dest)
        return make()


def _create(path: str) -> int:
    """A new file at ``path``, open for writing (see :func:`_replacing`)."""
    return _replacing(path, lambda: os.open(path, _CREATE, 0o666))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _SwitchInterval:
    """The interpreter's switch interval, shortened while any background writer runs:
    writers overlap (an export's images and label files, concurrent exports in the team
    server), so the first one in saves the interval and the last one out restores it."""

    SHORT = 0.0002

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0.0

    def shorten(self) -> None:
        with self._lock:
            if self._users == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self.SHORT, self._saved))
            self._users += 1

    def restore(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                sys.setswitchinterval(self._saved)


_SWITCH_INTERVAL = _SwitchInterval()


class _Jobs:
    """Runs ``work(*job)`` for each queued job on ``threads`` daemon threads.

    The first error is kept and raised by :meth:`finish`; jobs still queued after it are
    dropped. File creation waits on the kernel with the GIL released, so a few threads
    keep the file system busy while Python prepares the next files.

    Until :meth:`finish`, the interpreter's switch interval is 0.2 ms instead of 5 ms. A
    thread back from ``os.link`` or ``open`` waits for the GIL while the main thread
    prepares the next files, by default until the main thread is asked to let go every
    5 ms, about a hundred file creations' worth: a 10k-image YOLO export spent ~0.5 s
    creating its 20k files on two cores, ~0.4 s with 0.2 ms.
    """

    def __init__(self, work: Callable[..., None], threads: int, name: str) -> None:
        self._work = work
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._error: Exception | None = None
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                         for i in range(threads)]
        _SWITCH_INTERVAL.shorten()
        for t in self._threads:
            t.start()

    def put(self, *job: Any) -> None:
        self._queue.put(job)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._work(*job)
                except Exception as e:  # noqa: BLE001 - raised by finish()
                    self._error = self._error or e

    def finish(self) -> None:
        """Wait for every queued job; raise the first error."""
        if self._threads:
            for _ in self._threads:
                self._queue.put(None)
            for t in self._threads:
                t.join()
            self._threads = []
            _SWITCH_INTERVAL.restore()
        if self._error is not None:
            raise self._error


class FileWriter:
    """Writes the many small files of an export (label files, ...) with as few system
    calls as Python allows: each folder is created once, each file is create + write +
    close. Paths are strings (``Path`` objects cost more than the write).

    With ``background=True`` files are written by worker threads; use the writer as a
    context manager (or call :meth:`finish`) to wait for them and see the first error.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> with FileWriter(background=True) as files:
        ...     files.write(f"{root}/labels/a.txt", b"0 0.5 0.5 0.2 0.2")
        >>> open(f"{root}/labels/a.txt").read()
        '0 0.5 0.5 0.2 0.2'
    """

    def __init__(self, *, background: bool = False, threads: int = 2) -> None:
        self._made: set[str] = set()
        self._jobs = _Jobs(self._write, threads, "vf-files") if background else None

    def write(self, path: str, data: bytes) -> None:
        """Write ``data`` to a new file ``path`` (replacing one that is there)."""
        if self._jobs is None:
            self._write(path, data)
        else:
            self._jobs.put(path, data)

    def _write(self, path: str, data: bytes) -> None:
        parent = os.path.dirname(path)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        fd = _create(path)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Wait for the files written in the background; raise the first error."""
        jobs, self._jobs = self._jobs, None
        if jobs is not None:
            jobs.finish()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        else:  # the body's error wins; still stop the threads
            with contextlib.suppress(Exception):
                self.finish()


_NO_HARD_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP,
                           errno.EOPNOTSUPP, errno.ENOSYS})
"""Why a file system may refuse a hard link: another device, protected_hardlinks, too many
links to the file, no hard links at all."""


def _copy_file(src: str, dest: str) -> None:
    """Copy ``src`` to a new file ``dest`` in the kernel where it can (``copy_file_range``,
    else ``sendfile``, else read/write): about twice as fast as ``shutil.copyfile`` on
    small images."""
    fin = os.open(src, _READ)
    try:
        fout = _create(dest)
        try:
            remaining = os.fstat(fin).st_size
            if remaining:
                _copy_fds(fin, fout, remaining)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_fds(fin: int, fout: int, size: int) -> None:
    done = 0
    for copy in (_copy_range, _sendfile):
        try:
            while done < size and (n := copy(fin, fout, size - done)):
                done += n
            if done >= size:
                return
        except OSError as e:
            if done or e.errno not in _NOT_SUPPORTED:
                raise
    while chunk := os.read(fin, 1 << 20):  # no kernel copy here: plain read and write
        _write_all(fout, chunk)


_NOT_SUPPORTED = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                            errno.ENOTSUP, errno.EBADF, errno.EPERM})


def _copy_range(fin: int, fout: int, count: int) -> int:
    if not hasattr(os, "copy_file_range"):
        raise OSError(errno.ENOSYS, "copy_file_range is not available")
    return os.copy_file_range(fin, fout, count)


def _sendfile(fin: int, fout: int, count: int) -> int:
    if not hasattr(os, "sendfile"):
        raise OSError(errno.ENOSYS, "sendfile is not available")
    return os.sendfile(fout, fin, None, count)


class ImageWriter:
    """Places images into an export: copy, link (see :meth:`_link`), or nothing.

    With ``background=True`` placement runs on worker threads, so the kernel creates
    image files while the exporter writes annotation files into other folders (file
    creation, not Python, is what an export of many small files waits on); then call
    :meth:`finish` at the end: it waits and re-raises the first error (images queued
    after it are not placed).

    Args:
        source_path: maps a content hash to a local file path of the image (the blob).
        mode: copy, link or none.
        background: place images on background threads.
        threads: how many, with ``background``.
        progress: called with the number of images placed so far, every
            :data:`PROGRESS_EVERY` images and at :meth:`finish` (from the placing threads).
    """

    PROGRESS_EVERY = 256

    def __init__(self, source_path: Callable[[str], str], mode: ImagesMode, *,
                 background: bool = False, threads: int = 2,
                 progress: Callable[[int], None] | None = None) -> None:
        self._source_path = source_path
        self.mode = ImagesMode(mode)
        self.background = background
        self.threads = threads
        self._made: set[str] = set()
        self._jobs: _Jobs | None = None
        self._progress = progress
        self._placed = 0
        self._count_lock = threading.Lock()
        self._hard_links = True  # until the file system refuses one

    def place(self, content_hash: str, dest: str | os.PathLike[str]) -> None:
        """Put the image ``content_hash`` at ``dest`` (replacing a file that is there)."""
        if self.mode is ImagesMode.NONE:
            return
        if not self.background:
            self._place(content_hash, os.fspath(dest))
            return
        if self._jobs is None:
            self._jobs = _Jobs(self._place, self.threads, "vf-images")
        self._jobs.put(content_hash, os.fspath(dest))

    def _place(self, content_hash: str, dest: str) -> None:
        parent = os.path.dirname(dest)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        src = self._source_path(content_hash)
        if self.mode is ImagesMode.LINK:
            self._link(src, dest)
        else:
            _copy_file(src, dest)
        if self._progress is not None:
            with self._count_lock:
                self._placed += 1
                placed = self._placed
            if placed % self.PROGRESS_EVERY == 0:
                self._progress(placed)

    def _link(self, src: str, dest: str) -> None:
        """A hard link to the stored image where the file system allows one (a plain file
        to every tool, it keeps working if the store moves, and costs the kernel less
        than a symbolic link to a long path), else a symbolic link. Either way the image
        is the store's read-only file: editing it in place fails, and a later export over
        it replaces the link, never writes through it."""
        if self._hard_links:
            try:
                _replacing(dest, lambda: os.link(src, dest))
                return
            except OSError as e:
                if e.errno not in _NO_HARD_LINK:
                    raise
                if e.errno != errno.EMLINK:  # EMLINK: this image has too many; others may not
                    self._hard_links = False
        _replacing(dest, lambda: os.symlink(src, dest))

    def finish(self) -> None:
        """Wait for every image; raise the first error."""
        jobs, self._jobs = self._jobs, None
        if jobs is not None:
            jobs.finish()
        if self._progress is not None:
            self._progress(self._placed)


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
