"""Image folder: one folder per class (ImageNet / torchvision ``ImageFolder`` style).

Import
------
Every image under the root is a sample; its key is its path relative to the root (split
folder included). The first folder of the path is its class — deeper folders are ignored,
so ``label_1/label_1_1/x.jpg`` is class ``label_1`` — and an image directly in the root is a
sample without a label. When *every* folder at the root is a split name (``train``,
``val``, ``valid``, ``validation``, ``test``, ``trainval``; ``valid``/``validation`` read as
``val``), that folder is the split and the next folder the class; images directly in the
root are then samples without split or label. The ``split`` argument overrides the split.
Classes are the class folder names, sorted (empty folders count: they are declared
classes). Hidden files and folders are skipped; an image that is a symlink leading outside
the root is a ``Problem``. (A dataset whose only classes are named like splits, e.g. a
single class ``test``, is read as split folders.)

Export
------
``<class>/<basename>``, or ``<split>/<class>/<basename>`` when any sample has a split
(samples without a split then go under ``train/``); images without a classification label
go to the top (or to ``<split>/``). Basename clashes in one folder get ``_1``, ``_2``...
before the extension, in key order. Because the key becomes this new path, a round trip
keeps the samples (matched by image, i.e. basename before clashes), their splits and
classes, not the keys. Labels other than classification are not written. A sample with
classification labels of *different* classes cannot be represented and is left out of the
export entirely (an image with one class repeated is fine).

Example:
    >>> from pathlib import Path
    >>> from viewfinder.formats import imagefolder
    >>> ds = imagefolder.read(Path("imagenette/train"))   # doctest: +SKIP
    >>> ds.classes[:2]                                    # doctest: +SKIP
    ['n01440764', 'n02102040']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from viewfinder.core.types import LabelKind, SourceDataset, SourceLabel, SourceSample
from viewfinder.errors import Problem
from viewfinder.formats._files import SPLIT_ALIASES, check_root, out_path, walk_images
from viewfinder.formats.base import IMAGE_EXTENSIONS, ExportItem, ImageWriter

FORMAT = "imagefolder"

SPLIT_NAMES = frozenset({"train", "val", "valid", "validation", "test", "trainval"})

_ANNOTATION_EXTENSIONS = frozenset({".json", ".xml", ".txt", ".yaml", ".yml", ".csv", ".data", ".names"})


def detect(root: Path) -> bool:
    """Only images and folders at the top (no annotation files), and an image within two levels.

    The weakest detector: ``auto`` tries it last.
    """
    if not root.is_dir():
        return False
    folders = []
    has_image = False
    with os.scandir(root) as entries:
        listed = list(entries)
    for entry in listed:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            folders.append(entry.path)
            continue
        ext = os.path.splitext(entry.name)[1].lower()
        if ext in _ANNOTATION_EXTENSIONS:
            return False
        has_image = has_image or ext in IMAGE_EXTENSIONS
    return has_image or any(_has_image(f, depth=1) for f in sorted(folders))


def _has_image(folder: str, depth: int) -> bool:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return False
    for entry in entries:
        if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
            return True
    return depth > 0 and any(_has_image(e.path, depth - 1) for e in entries
                             if e.is_dir() and not e.name.startswith("."))


def _top_folders(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def read(root: Path, *, split: str | None = None) -> SourceDataset:
    """Read a folder-per-class dataset (see the module docstring).

    Raises:
        InvalidInput: ``root`` is not a folder.
    """
    check_root(root)
    problems: list[Problem] = []
    top = _top_folders(root)
    by_split = bool(top) and all(name in SPLIT_NAMES for name in top)
    classes = set()
    if by_split:
        for name in top:
            classes.update(_top_folders(root / name))
    else:
        classes.update(top)

    samples = []
    for path in walk_images(root, root, problems):
        key = path.relative_to(root).as_posix()
        parts = key.split("/")
        sample_split = None
        if by_split and len(parts) > 1:
            sample_split = SPLIT_ALIASES.get(parts[0], parts[0])
            parts = parts[1:]
        labels = [SourceLabel(kind=LabelKind.CLASSIFICATION, class_name=parts[0])] if len(parts) > 1 else []
        samples.append(SourceSample(key=key, path=os.path.abspath(path), labels=labels,
                                    split=split if split is not None else sample_split))
    samples.sort(key=lambda s: s.key)
    return SourceDataset(samples=samples, classes=sorted(classes), problems=problems, format=FORMAT)


def _class_of(sample: SourceSample) -> tuple[bool, str | None]:
    """``(representable, class)`` of a sample from its classification labels."""
    names = {lb.class_name for lb in sample.labels if lb.kind is LabelKind.CLASSIFICATION}
    if len(names) > 1:
        return False, None
    return True, next(iter(names), None)


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, ext = os.path.splitext(name)
    n = 1
    while f"{stem}_{n}{ext}" in taken:
        n += 1
    return f"{stem}_{n}{ext}"


def write(out: Path, items: Sequence[ExportItem], classes: list[str], images: ImageWriter) -> None:
    """Write ``items`` as class folders into ``out`` (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    with_splits = any(it.sample.split is not None for it in items)
    taken: dict[str, set[str]] = {}
    for item in sorted(items, key=lambda it: it.sample.key):
        ok, cls = _class_of(item.sample)
        if not ok:
            continue
        folder = []
        if with_splits:
            folder.append(item.sample.split or "train")
        if cls is not None:
            folder.append(cls)
        folder_key = "/".join(folder)
        names = taken.setdefault(folder_key, set())
        name = _unique(PurePosixPath(item.sample.key).name, names)
        names.add(name)
        images.place(item.content_hash, out_path(out, f"{folder_key}/{name}" if folder_key else name))
    # Declared classes without images stay declared: an empty folder (in every split folder).
    split_folders = sorted({it.sample.split or "train" for it in items}) if with_splits else [""]
    for folder in split_folders:
        for cls in classes:
            out_path(out, f"{folder}/{cls}" if folder else cls).mkdir(parents=True, exist_ok=True)
