"""YOLO: Ultralytics ``data.yaml`` and Darknet ``obj.data``/``obj.names`` layouts.

Import
------
Three layouts are read; the first one found wins:

1. **Ultralytics** — ``data.yaml`` (or ``data.yml``) with ``path`` (the dataset folder,
   relative to the YAML's folder; an absolute path or one leading outside the source is
   ignored, because datasets move between machines), ``train``/``val``/``test`` (each a
   folder of images, a ``.txt`` list of image paths, or a list of those), ``names`` (a list
   or an ``{id: name}`` mapping) and ``nc``. A ``../`` prefix that leads outside is retried
   without it, as Ultralytics does for Roboflow exports. List lines starting with ``./``
   are relative to the list file, other lines to ``path``. Any other key whose value names
   an existing ``.txt`` list is read as a split of that name (Viewfinder's exporter writes
   non-standard splits that way). A label file is found as Ultralytics finds it: the last
   ``/images/`` component of the image path becomes ``/labels/``, the extension ``.txt``.
2. **Darknet** — ``obj.data`` (``classes``, ``train``, ``valid``, ``test``, ``names``),
   ``obj.names`` and list files of image paths. Paths such as ``data/train.txt`` are taken
   relative to the dataset folder, dropping the leading ``data/`` when the literal path does
   not exist (Darknet runs from the folder holding ``data/``). Labels lie next to images.
3. **Loose** — just ``obj.names`` and images (Datumaro's variants): ``images/<split>/``
   with labels in ``labels/<split>/``, ``Images/`` with labels in ``Annotations/`` (same
   stem), or labels next to the images. The split is the first folder under ``images/``.

A sample's key is its image path relative to the *image root*: ``<path>/images`` when that
folder exists, otherwise the dataset folder. Its split comes from the YAML/``obj.data`` key
(``train``; ``val``/``valid``/``validation`` → ``val``; ``test``) or the ``images/<split>``
folder; the ``split`` argument overrides both. An image listed under several splits keeps
the first (``train``, ``val``, ``test``, then other keys), silently: datasets such as
coco128 list the same folder as ``train`` and ``val`` on purpose.

Label lines are ``class cx cy w h`` (normalized) → a ``box`` in pixels of the image's
(EXIF-oriented) size, or ``class x1 y1 x2 y2 x3 y3 ...`` (an odd number ≥ 7 of values) → a
``polygon`` whose bbox is derived. A missing or empty label file means an image without
labels. Each bad line is a ``Problem`` (label file, ``line N``) and is left out: wrong
value count, a non-numeric value, a class id out of range, a normalized value outside
``[0, 1]`` by more than 1e-3, a box reaching outside the image, non-positive width/height.
An unreadable image, an image missing from a list file, a list entry that is absolute or
contains ``..``, an unreadable label file (the whole sample is then left out) and a
malformed ``data.yaml`` are problems too. Pose datasets (``kpt_shape``) are reported and
read as boxes only.

Export
------
Ultralytics layout: ``images/<key>``, ``labels/<key>.txt`` (derived from the image path
exactly as Ultralytics derives it, so a key that contains ``images/`` keeps its labels
where Ultralytics looks), one sorted ``<split>.txt`` list per split with ``./images/<key>``
lines, and ``data.yaml`` with an empty ``path`` (Ultralytics then resolves the lists from
the YAML's folder; ``path: .`` would mean the current working directory),
``train``/``val``/``test`` (+ other splits as extra keys), ``nc`` and ``names: {0: name}``.
Every image gets a label file (empty when it has no labels). Coordinates are normalized
and written with ``%.6f``.

What YOLO cannot carry, and what the exporter does instead:

- samples without a split (and samples whose split name cannot be a YAML key) are listed
  in ``train.txt``, so they come back with split ``train``; when there is no ``val`` split,
  ``val: train.txt`` is written because Ultralytics requires a ``val`` key;
- a polygon with several rings becomes one line (one polygon) per ring;
- masks are written as their bounding box (no contour tracing), keypoint labels as their
  box (skipped when they have none), classification labels are skipped;
- attributes, ``iscrowd``, scores and label ids are not representable and are dropped.

Example:
    >>> from pathlib import Path
    >>> from viewfinder.formats import yolo
    >>> ds = yolo.read(Path("datasets/coco8"))            # doctest: +SKIP
    >>> ds.samples[0].key, ds.samples[0].split             # doctest: +SKIP
    ('train/000000000009.jpg', 'train')
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viewfinder.core.geometry import polygons_bbox
from viewfinder.core.types import LabelKind, SourceDataset, SourceLabel, SourceSample
from viewfinder.errors import InvalidInput, Problem
from viewfinder.formats._files import (
    SPLIT_ALIASES,
    check_root,
    export_classes,
    read_text,
    rel,
    strip_ext,
    walk_images,
    write_bytes,
)
from viewfinder.formats.base import (
    IMAGE_EXTENSIONS,
    ExportItem,
    ExportTables,
    FileWriter,
    ImageWriter,
    UnsafePath,
    export_dest,
    export_tables,
    image_size,
    safe_join,
)

FORMAT = "yolo"

TOLERANCE = 1e-3
"""How far a normalized value may stray outside ``[0, 1]`` (rounding in exporters)."""

_YAML_NAMES = ("data.yaml", "data.yml")
_YAML_SPLIT_KEYS = ("train", "val", "valid", "validation", "test")
_YAML_RESERVED = frozenset({
    *_YAML_SPLIT_KEYS, "path", "names", "nc", "download", "kpt_shape", "flip_idx", "channels",
    "yaml_file", "roboflow",
})
_DARKNET_SPLIT_KEYS = (("train", "train"), ("valid", "val"), ("val", "val"), ("test", "test"))
_SPLIT_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_LABEL_DIR_NAMES = ("labels", "Labels", "annotations", "Annotations")


def detect(root: Path) -> bool:
    """A ``data.yaml``, ``obj.data`` or ``obj.names`` at the top of ``root``."""
    return root.is_dir() and any((root / n).is_file() for n in (*_YAML_NAMES, "obj.data", "obj.names"))


# --------------------------------------------------------------------------- import


@dataclass
class _Entry:
    image: Path
    split: str | None
    listed_in: str | None = None  # list file (relative) and line, for "missing image" problems
    line: int | None = None


@dataclass
class _Layout:
    image_root: Path
    classes: list[str] = field(default_factory=list)
    names_known: bool = True
    """False when no class names were found: ids then become ``class_<id>``."""
    entries: list[_Entry] = field(default_factory=list)
    keypoint_values: int = 0
    """Values per line after the box in a pose dataset (``kpt_shape`` product), else 0."""


def read(root: Path, *, split: str | None = None) -> SourceDataset:
    """Read a YOLO dataset (any of the three layouts above).

    Args:
        root: the dataset folder.
        split: when given, every sample gets this split.

    Raises:
        InvalidInput: ``root`` is not a folder.
    """
    check_root(root)
    problems: list[Problem] = []
    yaml_file = next((root / n for n in _YAML_NAMES if (root / n).is_file()), None)
    if yaml_file is not None:
        layout = _ultralytics_layout(root, yaml_file, problems)
    elif (root / "obj.data").is_file():
        layout = _darknet_layout(root, problems)
    else:
        layout = _loose_layout(root, problems)

    samples: dict[str, SourceSample] = {}
    for entry in layout.entries:
        key = _key(root, layout.image_root, entry.image)
        if key in samples:
            continue
        sample = _read_sample(root, key, entry, layout, problems)
        if sample is not None:
            if split is not None:
                sample.split = split
            samples[key] = sample
    return SourceDataset(samples=[samples[k] for k in sorted(samples)], classes=layout.classes,
                         problems=problems, format=FORMAT)


def _key(root: Path, image_root: Path, image: Path) -> str:
    try:
        return image.relative_to(image_root).as_posix()
    except ValueError:
        return image.relative_to(root).as_posix()


def _image_root(base: Path) -> Path:
    return base / "images" if (base / "images").is_dir() else base


# ---- Ultralytics data.yaml


def _ultralytics_layout(root: Path, yaml_file: Path, problems: list[Problem]) -> _Layout:
    import yaml

    cfg = rel(root, yaml_file)
    text = read_text(yaml_file, root, problems)
    if text is None:
        return _Layout(image_root=_image_root(root))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        what = getattr(e, "problem", None) or str(e)
        problems.append(Problem(cfg, f"malformed YAML: {what}",
                                record=f"line {mark.line + 1}" if mark is not None else None))
        return _Layout(image_root=_image_root(root))
    if not isinstance(data, dict):
        problems.append(Problem(cfg, "expected a mapping with train/val/names keys"))
        return _Layout(image_root=_image_root(root))

    base = _yaml_base(root, data.get("path"))
    layout = _Layout(image_root=_image_root(base))
    layout.classes, layout.names_known = _yaml_names(data, cfg, problems)
    if data.get("kpt_shape") is not None:
        layout.keypoint_values = _keypoint_values(data["kpt_shape"], cfg, problems)

    split_keys = [k for k in _YAML_SPLIT_KEYS if k in data]
    split_keys += sorted(k for k, v in data.items()
                         if isinstance(k, str) and k not in _YAML_RESERVED and isinstance(v, str)
                         and v.lower().endswith(".txt") and _existing(base, v) is not None)
    for key in split_keys:
        split_name = SPLIT_ALIASES.get(key, key)
        value = data[key]
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item:
                problems.append(Problem(cfg, f"{key}: expected a path, got {item!r}", record=key))
                continue
            layout.entries += _yaml_entry(root, base, item, split_name, cfg, key, problems)
    return layout


def _yaml_base(root: Path, path: Any) -> Path:
    """The ``path`` key as a folder inside ``root``; ``root`` when absent or unusable."""
    if not isinstance(path, str) or path.strip() in ("", "."):
        return root
    try:
        base = safe_join(root, path)
    except UnsafePath:
        return root
    return base if base.is_dir() else root


def _existing(base: Path, name: str) -> Path | None:
    try:
        p = safe_join(base, name)
    except UnsafePath:
        return None
    return p if p.exists() else None


def _yaml_names(data: dict[str, Any], cfg: str, problems: list[Problem]) -> tuple[list[str], bool]:
    names = data.get("names")
    nc = data.get("nc")
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 0):
        problems.append(Problem(cfg, f"nc must be a non-negative integer, got {nc!r}", record="nc"))
        nc = None
    if names is None:
        if nc is None:
            problems.append(Problem(cfg, "no class names: add names (or nc)", record="names"))
            return [], False
        return [f"class_{i}" for i in range(nc)], True
    if isinstance(names, list):
        classes = [_class_name(i, n, cfg, problems) for i, n in enumerate(names)]
    elif isinstance(names, dict):
        ids: dict[int, str] = {}
        for k, v in names.items():
            try:
                i = int(k)
            except (TypeError, ValueError):
                problems.append(Problem(cfg, f"class id {k!r} is not an integer", record="names"))
            else:
                ids[i] = _class_name(i, v, cfg, problems)
        size = max(ids, default=-1) + 1
        missing = [i for i in range(size) if i not in ids]
        if missing or min(ids, default=0) < 0:
            problems.append(Problem(cfg, f"class ids must run from 0 to {size - 1}; missing {missing}",
                                    record="names"))
        classes = [ids.get(i, f"class_{i}") for i in range(size)]
    else:
        problems.append(Problem(cfg, f"names must be a list or a mapping, got {type(names).__name__}",
                                record="names"))
        return [], False
    if nc is not None and nc != len(classes):
        problems.append(Problem(cfg, f"nc is {nc} but names has {len(classes)} entries", record="nc"))
    return classes, True


def _class_name(i: int, name: Any, cfg: str, problems: list[Problem]) -> str:
    # Only scalars: YAML aliases can make a nested value exponentially large when printed.
    if isinstance(name, (str, int, float)) and not isinstance(name, bool):
        return str(name)
    problems.append(Problem(cfg, f"class {i} has a name that is not text", record="names"))
    return f"class_{i}"


def _keypoint_values(shape: Any, cfg: str, problems: list[Problem]) -> int:
    problems.append(Problem(cfg, "keypoint (pose) labels are not supported: only their boxes are read",
                            record="kpt_shape"))
    if isinstance(shape, list) and shape and all(isinstance(v, int) and v > 0 for v in shape):
        return math.prod(shape)
    return 0


def _yaml_entry(root: Path, base: Path, item: str, split: str, cfg: str, key: str,
                problems: list[Problem]) -> list[_Entry]:
    path: Path | None = None
    error: str | None = None
    try:
        path = safe_join(base, item)
    except UnsafePath as e:
        error = str(e)
    if (path is None or not path.exists()) and item.replace("\\", "/").startswith("../"):
        retry = _existing(base, item[3:])
        if retry is not None:
            path, error = retry, None
    if path is None:
        problems.append(Problem(cfg, error or f"bad path {item!r}", record=key))
        return []
    if not path.exists():
        problems.append(Problem(cfg, f"{key}: {item!r} does not exist", record=key))
        return []
    if path.is_dir():
        return [_Entry(p, split) for p in walk_images(root, path, problems)]
    if path.is_file() and path.suffix.lower() == ".txt":
        return _read_list(root, path, split, base, problems, darknet=False)
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        return [_Entry(path, split)]
    problems.append(Problem(cfg, f"{key}: {item!r} is not a folder of images nor a .txt list", record=key))
    return []


def _read_list(root: Path, list_file: Path, split: str | None, base: Path, problems: list[Problem], *,
               darknet: bool) -> list[_Entry]:
    """Image paths from a list file: ``./x`` relative to the list, others relative to ``base``."""
    text = read_text(list_file, root, problems)
    if text is None:
        return []
    where = rel(root, list_file)
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        anchor, rest = (list_file.parent, name[2:]) if name.startswith("./") else (base, name)
        try:
            path = _darknet_path(anchor, rest) if darknet else safe_join(anchor, rest)
        except UnsafePath as e:
            problems.append(Problem(where, str(e), record=f"line {n}"))
            continue
        entries.append(_Entry(path, split, where, n))
    return entries


# ---- Darknet obj.data


def _darknet_path(root: Path, name: str) -> Path:
    """``name`` inside ``root``; a leading ``data/`` is dropped when the literal path is absent."""
    literal: Path | None = None
    error: UnsafePath | None = None
    try:
        literal = safe_join(root, name)
    except UnsafePath as e:
        error = e
    norm = name.replace("\\", "/")
    if (literal is None or not literal.exists()) and norm.startswith("data/"):
        try:
            stripped = safe_join(root, norm[5:])
        except UnsafePath:
            stripped = None
        if stripped is not None and stripped.exists():
            return stripped
    if literal is None:
        raise error  # type: ignore[misc]
    return literal


def _darknet_layout(root: Path, problems: list[Problem]) -> _Layout:
    cfg_file = root / "obj.data"
    cfg = rel(root, cfg_file)
    layout = _Layout(image_root=_image_root(root))
    text = read_text(cfg_file, root, problems)
    if text is None:
        return layout
    data: dict[str, tuple[str, int]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            problems.append(Problem(cfg, f"expected key = value, got {line!r}", record=f"line {n}"))
            continue
        data[key.strip()] = (value.strip(), n)

    names_file = root / "obj.names"
    if "names" in data:
        value, n = data["names"]
        try:
            names_file = _darknet_path(root, value)
        except UnsafePath as e:
            problems.append(Problem(cfg, str(e), record=f"line {n}"))
    layout.classes, layout.names_known = _names_file(root, names_file, problems)
    if "classes" in data:
        value, n = data["classes"]
        if not value.isdigit() or (layout.names_known and int(value) != len(layout.classes)):
            problems.append(Problem(cfg, f"classes = {value} but {rel(root, names_file)} names "
                                         f"{len(layout.classes)} classes", record=f"line {n}"))

    listed = False
    for key, split in _DARKNET_SPLIT_KEYS:
        if key not in data:
            continue
        listed = True
        value, n = data[key]
        try:
            list_file = _darknet_path(root, value)
        except UnsafePath as e:
            problems.append(Problem(cfg, str(e), record=f"line {n}"))
            continue
        if not list_file.is_file():
            problems.append(Problem(cfg, f"list file {value!r} does not exist", record=f"line {n}"))
            continue
        layout.entries += _read_list(root, list_file, split, root, problems, darknet=True)
    if not listed:
        layout.entries = _loose_entries(root, layout.image_root, problems)
    return layout


def _names_file(root: Path, path: Path, problems: list[Problem]) -> tuple[list[str], bool]:
    if not path.is_file():
        problems.append(Problem(rel(root, path), "class names file does not exist"))
        return [], False
    text = read_text(path, root, problems)
    if text is None:
        return [], False
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    classes = []
    for n, name in enumerate(lines, 1):
        if not name:
            problems.append(Problem(rel(root, path), "empty class name", record=f"line {n}"))
            name = f"class_{n - 1}"
        classes.append(name)
    return classes, True


# ---- loose (obj.names + folders)


def _loose_layout(root: Path, problems: list[Problem]) -> _Layout:
    layout = _Layout(image_root=_image_root(root))
    names_file = root / "obj.names"
    if names_file.is_file():
        layout.classes, layout.names_known = _names_file(root, names_file, problems)
    else:
        problems.append(Problem(".", "no class names: expected data.yaml, obj.data or obj.names"))
        layout.names_known = False
    layout.entries = _loose_entries(root, layout.image_root, problems)
    return layout


def _loose_entries(root: Path, image_root: Path, problems: list[Problem]) -> list[_Entry]:
    entries = []
    for path in walk_images(root, image_root, problems):
        split = None
        if image_root != root:
            parts = path.relative_to(image_root).parts
            if len(parts) > 1:
                split = SPLIT_ALIASES.get(parts[0], parts[0])
        entries.append(_Entry(path, split))
    return entries


# ---- samples and label lines


def label_path(image: str) -> str:
    """The label file Ultralytics reads for ``image`` (a POSIX path).

    The last ``/images/`` component becomes ``/labels/`` and the extension ``.txt``.

    Example:
        >>> label_path("images/train/a.jpg")
        'labels/train/a.txt'
        >>> label_path("obj_train_data/a.jpg")
        'obj_train_data/a.txt'
    """
    s = "/" + image
    if "/images/" in s:
        s = "/labels/".join(s.rsplit("/images/", 1))
    return strip_ext(s[1:]) + ".txt"


def _find_label(root: Path, image: Path) -> Path | None:
    name = image.relative_to(root).as_posix()
    candidates = [label_path(name), strip_ext(name) + ".txt"]
    parts = name.split("/")
    for i in range(len(parts) - 2, -1, -1):  # Images/ → labels/ or Annotations/ (Datumaro)
        if parts[i].lower() == "images":
            candidates += ["/".join([*parts[:i], d, *parts[i + 1:-1], strip_ext(parts[-1]) + ".txt"])
                           for d in _LABEL_DIR_NAMES]
            break
    for candidate in candidates:
        try:
            path = safe_join(root, candidate)
        except UnsafePath:
            continue
        if path.is_file():
            return path
    return None


def _read_sample(root: Path, key: str, entry: _Entry, layout: _Layout,
                 problems: list[Problem]) -> SourceSample | None:
    image = entry.image
    if not image.is_file():
        where = entry.listed_in or rel(root, image)
        problems.append(Problem(where, f"image {rel(root, image)} does not exist",
                                record=f"line {entry.line}" if entry.line else None))
        return None
    try:
        width, height = image_size(image)
    except ValueError as e:
        problems.append(Problem(rel(root, image), f"cannot read image: {e}", record=f"image {key}"))
        return None
    labels: list[SourceLabel] = []
    label_file = _find_label(root, image)
    if label_file is not None:
        text = read_text(label_file, root, problems)
        if text is None:
            return None  # an unreadable label file: no half-read labels for this sample
        where = rel(root, label_file)
        for n, line in enumerate(text.splitlines(), 1):
            tokens = line.split()
            if not tokens:
                continue
            label = _parse_line(tokens, layout, width, height)
            if isinstance(label, str):
                problems.append(Problem(where, label, record=f"line {n}"))
            else:
                labels.append(label)
    return SourceSample(key=key, path=os.path.abspath(image), labels=labels, split=entry.split,
                        width=width, height=height)


def _parse_line(tokens: list[str], layout: _Layout, width: int, height: int) -> SourceLabel | str:
    """One label line → a label, or the message of what is wrong with it."""
    values = []
    for t in tokens:
        try:
            v = float(t)
        except ValueError:
            return f"non-numeric value {t!r}"
        if not math.isfinite(v):
            return f"non-numeric value {t!r}"
        values.append(v)
    if not values[0].is_integer() or values[0] < 0:
        return f"class id {tokens[0]!r} is not a non-negative integer"
    cls = int(values[0])
    if layout.names_known and cls >= len(layout.classes):
        return f"class id {cls} is out of range: {len(layout.classes)} classes (0..{len(layout.classes) - 1})"
    while not layout.names_known and cls >= len(layout.classes):
        layout.classes.append(f"class_{len(layout.classes)}")
    coords = values[1:]
    if layout.keypoint_values and len(coords) == 4 + layout.keypoint_values:
        coords = coords[:4]
    if len(coords) != 4 and (len(coords) < 6 or len(coords) % 2):
        return (f"{len(tokens)} values: expected 5 (class cx cy w h) or an odd number of at least 7 "
                f"(class x1 y1 x2 y2 x3 y3 ...)")
    if len(coords) == 4 and (coords[2] <= 0 or coords[3] <= 0):
        return f"box width and height must be positive, got {tokens[3]} x {tokens[4]}"
    for t, v in zip(tokens[1:], coords):
        if v < -TOLERANCE or v > 1 + TOLERANCE:
            return f"normalized coordinate {t} is outside [0, 1]"
    name = layout.classes[cls]
    if len(coords) == 4:
        cx, cy, w, h = coords
        if (cx - w / 2 < -TOLERANCE or cy - h / 2 < -TOLERANCE
                or cx + w / 2 > 1 + TOLERANCE or cy + h / 2 > 1 + TOLERANCE):
            return "box reaches outside the image"
        pw, ph = w * width, h * height
        return SourceLabel(kind=LabelKind.BOX, class_name=name,
                           bbox=(cx * width - pw / 2, cy * height - ph / 2, pw, ph))
    ring = [v * (width if i % 2 == 0 else height) for i, v in enumerate(coords)]
    return SourceLabel(kind=LabelKind.POLYGON, class_name=name, polygon=[ring], bbox=polygons_bbox([ring]))


# --------------------------------------------------------------------------- export


def _num(v: float) -> str:
    s = f"{v:.6f}"
    return "0.000000" if s == "-0.000000" else s


def _mask_bbox(mask: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """The bounding box of a COCO RLE (``None`` for an empty mask)."""
    from pycocotools import mask as mask_utils

    rle = dict(mask)
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    elif isinstance(rle.get("counts"), str):
        rle["counts"] = rle["counts"].encode("ascii")
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return (x, y, w, h) if w > 0 and h > 0 else None


_BOX_LINE = "%d %.6f %.6f %.6f %.6f\n"
"""``class cx cy w h``, normalized; what :func:`_num` writes as ``0.000000`` comes out
``-0.000000`` here and is replaced afterwards."""


def _rare_lines(cls: int, polygon: list[list[float]] | None, mask: str | None,
                w: int, h: int) -> str:
    """The lines of a polygon (one per ring of at least 3 points) or of a mask without a
    stored box (its box, computed from the RLE)."""
    if polygon:
        return "".join(
            f"{cls} {' '.join(_num(v / (w if i % 2 == 0 else h)) for i, v in enumerate(ring))}\n"
            for ring in polygon if len(ring) >= 6)
    box = _mask_bbox(json.loads(mask)) if mask else None
    if box is None:
        return ""
    x, y, bw, bh = box
    return f"{cls} {_num((x + bw / 2) / w)} {_num((y + bh / 2) / h)} {_num(bw / w)} {_num(bh / h)}\n"


def _label_files(tables: ExportTables, index: dict[str, int]) -> list[str]:
    """The text of every sample's label file, in sample order.

    Boxes (and the stored boxes of masks, keypoints and polygons without rings) are
    normalized and formatted column by column; polygon rings and masks without a stored
    box label by label. Classification labels and labels without geometry get no line.

    Raises:
        InvalidInput: a sample with labels to write has no stored image size.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    samples, labels = tables.samples, tables.labels
    texts = [""] * samples.num_rows
    if labels.num_rows == 0:
        return texts

    def flags(arr: Any) -> Any:
        return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)

    at = labels.column("sample_index").to_numpy()
    width = pc.fill_null(samples.column("width"), 0).to_numpy()[at]
    height = pc.fill_null(samples.column("height"), 0).to_numpy()[at]
    kind = labels.column("kind")
    drawn = flags(pc.not_equal(kind, LabelKind.CLASSIFICATION.value))
    unsized = drawn & ((width == 0) | (height == 0))
    if unsized.any():
        key = samples.column("key")[int(at[np.argmax(unsized)])].as_py()
        raise InvalidInput(f"sample {key!r} has no stored image size: cannot normalize "
                           f"its labels for YOLO", record=key)
    rings = flags(pc.and_(pc.equal(kind, LabelKind.POLYGON.value),
                          pc.greater(pc.list_value_length(labels.column("polygon")), 0)))
    boxless = flags(pc.is_null(labels.column("x")))
    masks = flags(pc.equal(kind, LabelKind.MASK.value))
    cls = pc.index_in(labels.column("class_name"), value_set=pa.array(list(index), pa.string()))
    cls = pc.fill_null(cls, -1).to_numpy()

    parts = [""] * labels.num_rows
    boxed = np.flatnonzero(drawn & ~rings & ~boxless)
    if len(boxed):
        rows = pa.array(boxed)
        x, y, w, h = (labels.column(c).take(rows).to_numpy(zero_copy_only=False)
                      for c in ("x", "y", "w", "h"))
        iw, ih = width[boxed].astype(np.float64), height[boxed].astype(np.float64)
        lines = map(_BOX_LINE.__mod__, zip(cls[boxed].tolist(), ((x + w / 2) / iw).tolist(),
                                           ((y + h / 2) / ih).tolist(), (w / iw).tolist(),
                                           (h / ih).tolist(), strict=True))
        for i, line in zip(boxed.tolist(), lines, strict=True):
            parts[i] = line
    for i in np.flatnonzero(drawn & (rings | (masks & boxless))).tolist():
        parts[i] = _rare_lines(int(cls[i]), labels.column("polygon")[i].as_py(),
                               labels.column("mask")[i].as_py(), int(width[i]), int(height[i]))
    bounds = tables.label_bounds()
    for n in range(samples.num_rows):
        if bounds[n] != bounds[n + 1]:
            text = "".join(parts[bounds[n]:bounds[n + 1]])
            texts[n] = text.replace(" -0.000000", " 0.000000") if "-0.000000" in text else text
    return texts


def _export_split(split: str | None) -> str:
    if split is None:
        return "train"
    split = SPLIT_ALIASES.get(split, split)
    if split in ("train", "val", "test"):
        return split
    if _SPLIT_KEY_RE.match(split) and split not in _YAML_RESERVED:
        return split
    return "train"


_YAML_HEADER = (
    "# Ultralytics YOLO dataset written by Viewfinder.\n"
    "# path is empty on purpose: Ultralytics then resolves the lists from this file's folder\n"
    "# ('.' would mean the current working directory).\n"
)


def write(out: Path, items: Sequence[ExportItem], classes: list[str], images: ImageWriter) -> None:
    """Write ``items`` as an Ultralytics YOLO dataset into ``out`` (see the module docstring).

    Works on columns (:class:`ExportTables`): beyond creating the files, 10k images with
    45k boxes cost a few tenths of a second.

    Raises:
        InvalidInput: a sample with labels has no stored image size, or a key would leave ``out``.
    """
    import pyarrow.compute as pc
    import yaml

    tables = export_tables(items)
    samples = tables.samples
    out.mkdir(parents=True, exist_ok=True)
    classes = export_classes(classes, pc.unique(tables.labels.column("class_name")).to_pylist())
    texts = _label_files(tables, {name: i for i, name in enumerate(classes)})
    root = os.fspath(out)
    lists: dict[str, list[str]] = {"train": []}
    split_names: dict[str | None, str] = {}
    with FileWriter(background=True) as files:
        for key, content_hash, split, text in zip(
                samples.column("key").to_pylist(), samples.column("content_hash").to_pylist(),
                samples.column("split").to_pylist(), texts, strict=True):
            image_rel = f"images/{key}"
            images.place(content_hash, export_dest(root, image_rel))
            files.write(export_dest(root, label_path(image_rel)), text.encode())
            name = split_names.get(split)
            if name is None:
                name = split_names[split] = _export_split(split)
            lists.setdefault(name, []).append(f"./{image_rel}")

    doc: dict[str, Any] = {"path": "", "train": "train.txt",
                           "val": "val.txt" if "val" in lists else "train.txt"}
    if "test" in lists:
        doc["test"] = "test.txt"
    for name in sorted(lists):
        if name not in doc:
            doc[name] = f"{name}.txt"
    doc["nc"] = len(classes)
    doc["names"] = dict(enumerate(classes))
    for name, lines in lists.items():
        write_bytes(out / f"{name}.txt", "".join(f"{x}\n" for x in sorted(lines)).encode())
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    write_bytes(out / "data.yaml", (_YAML_HEADER + text).encode())
