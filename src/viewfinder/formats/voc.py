"""Pascal VOC: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/``, segmentation PNGs.

Import
------
- **Samples** are the union of the annotation XMLs, the ids in the ``ImageSets`` lists and
  the images in ``JPEGImages/`` (an image without an XML is a sample without labels). The
  image root is ``JPEGImages/``: a sample's key is the XML's ``<filename>`` (falling back to
  an image with the XML's stem), or ``<id>.<ext>`` for list ids without an XML. When the
  image file is missing, the sample is kept with ``path=None`` and a ``Problem`` (its
  labels are in pixels and need no image); an id with neither XML nor image likewise.
- **Splits** come from ``ImageSets/Main/<split>.txt`` (then ``Segmentation``, ``Layout``,
  ``Action`` lists for ids not in ``Main``). An id in several lists takes the first list in
  sorted order, except that ``trainval`` is used only for ids in no other list. ``default``
  means "no split". The ``split`` argument overrides all of this.
- **Classes**: ``labelmap.txt`` (Datumaro's ``name:r,g,b:parts:actions``) when present —
  then a class it does not declare is a ``Problem`` — otherwise the 20 VOC classes plus
  any other name used (``background``/``ignored`` included), sorted, at the end.
- **Objects** become ``box`` labels. VOC pixel indices are 1-based and inclusive, so
  ``bbox = (xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1)``; the exporter writes
  ``xmin = x + 1``, ``xmax = x + w``, so a round trip is exact. Attributes: ``difficult``,
  ``truncated``, ``occluded`` (always present, ``False`` when absent), ``pose`` (when
  present), ``parts`` (a list of ``{"name", "bbox"}``, boxes converted the same way),
  ``actions`` (``{name: bool}``) and each ``<attributes><attribute>`` name/value pair
  (``true``/``false`` → bool, numbers → int/float, else text).
- **Image-level labels**: a ``1`` in ``ImageSets/Main/<class>_<split>.txt`` for an image
  with no object of that class becomes a ``classification`` label (positives that an
  object already explains add nothing; ``0``/``-1`` add nothing).
- **Masks**: each instance colour in ``SegmentationObject/<id>.png`` becomes a ``mask``
  label (COCO RLE) whose class is the majority colour under it in
  ``SegmentationClass/<id>.png`` (colours from ``labelmap.txt`` or the VOC palette; black is
  background, ``(224, 224, 192)`` is the void border). With only ``SegmentationClass``, each
  class colour present becomes one mask.
- **Problems** (the record is left out): malformed or unsafe XML (file and line; the whole
  sample is then left out), a missing ``<name>`` or ``<bndbox>``, a non-numeric coordinate,
  ``xmax < xmin``, a box outside ``<size>``, an unsafe file name or id, a missing image, an
  unknown class, an unreadable or wrongly sized mask PNG (the sample is left out).

Export
------
``Annotations/<id>.xml`` for every sample, ``JPEGImages/<key>``,
``ImageSets/Main/<split>.txt`` (``default.txt`` for samples without a split),
``labelmap.txt`` and, when the dataset has masks, ``SegmentationObject/<id>.png`` +
``SegmentationClass/<id>.png`` + ``ImageSets/Segmentation/<split>.txt``; when it has
classification labels, ``ImageSets/Main/<class>_<split>.txt`` for every class (``1``,
``0`` when only difficult objects, ``-1``). The id is the key without its extension,
``/`` replaced by ``__`` and whitespace by ``_`` (``-1``, ``-2``... on a clash); the full
key stays in ``<filename>``, so re-import gives the same keys. XML is written by hand with
a fixed element order; numbers are written with at most 6 decimals.

What VOC cannot carry: polygons and keypoint labels are written as their bounding box;
overlapping masks keep the later one's pixels; the pairing of a mask with its object box
is not kept; a classification label whose image also has an object of that class is
absorbed by the object; scores, ``iscrowd`` and label ids are dropped; attribute values
that are lists or dicts come back as JSON text; split or class names that are not plain
file names are written as ``default`` / without ``<class>_<split>.txt`` files.

Example:
    >>> from pathlib import Path
    >>> from viewfinder.formats import voc
    >>> ds = voc.read(Path("VOCdevkit/VOC2012"))          # doctest: +SKIP
    >>> ds.samples[0].labels[0].bbox                       # doctest: +SKIP
    (173.0, 100.0, 99.0, 130.0)
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
from xml.sax.saxutils import escape

import numpy as np

from viewfinder.core.types import LabelKind, SourceDataset, SourceLabel, SourceSample
from viewfinder.errors import Problem
from viewfinder.formats._files import (
    check_root,
    export_classes,
    out_path,
    read_text,
    rel,
    strip_ext,
    walk_images,
    write_bytes,
)
from viewfinder.formats._voc_palette import (
    BACKGROUND,
    IGNORED,
    VOC_CLASSES,
    VOID_CODE,
    VOID_INDEX,
    class_colors,
    code,
    decode_mask,
    load_codes,
    mask_label,
    png,
    uncode,
    voc_color,
    voc_index,
)
from viewfinder.formats.base import (
    MAX_ANNOTATION_BYTES,
    ExportItem,
    ImageWriter,
    UnsafePath,
    safe_join,
)

FORMAT = "voc"

FLAGS = ("truncated", "occluded", "difficult")
_RESERVED_ATTRIBUTES = frozenset({*FLAGS, "pose", "parts", "actions"})
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_PLAIN_NAME = re.compile(r"^[^/\\\x00\s:*?\"<>|]+$")


def detect(root: Path) -> bool:
    """``Annotations/`` with an XML file, or ``JPEGImages/`` next to ``ImageSets/``."""
    if not root.is_dir():
        return False
    ann = root / "Annotations"
    if ann.is_dir():
        with os.scandir(ann) as entries:
            if any(e.name.endswith(".xml") for e in entries):
                return True
    return (root / "JPEGImages").is_dir() and (root / "ImageSets").is_dir()


# --------------------------------------------------------------------------- import


@dataclass
class _Schema:
    classes: list[str]
    declared: bool
    """True when ``labelmap.txt`` declared the classes (unknown names are then problems)."""
    colors: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    extra: set[str] = field(default_factory=set)

    def accept(self, name: str) -> bool:
        if name in self.classes or name in self.extra:
            return True
        if self.declared:
            return False
        self.extra.add(name)
        return True

    def final_classes(self) -> list[str]:
        return self.classes + sorted(self.extra)


@dataclass
class _ListEntry:
    split: str | None
    file: str
    line: int


def read(root: Path, *, split: str | None = None) -> SourceDataset:
    """Read a Pascal VOC dataset (see the module docstring).

    Args:
        root: the folder holding ``Annotations/``, ``JPEGImages/``, ``ImageSets/``.
        split: when given, every sample gets this split.

    Raises:
        InvalidInput: ``root`` is not a folder.
    """
    check_root(root)
    problems: list[Problem] = []
    schema = _read_labelmap(root, problems)
    jpeg_dir = root / "JPEGImages"
    main = root / "ImageSets" / "Main"
    split_files, class_files = _main_lists(main)
    membership = _membership(root, main, split_files, problems)
    for sub in ("Segmentation", "Layout", "Action"):
        folder = root / "ImageSets" / sub
        if folder.is_dir():
            for ident, entry in _membership(root, folder, _main_lists(folder)[0], problems).items():
                membership.setdefault(ident, entry)

    samples: dict[str, SourceSample] = {}
    id_to_key: dict[str, str] = {}
    object_classes: dict[str, set[str]] = {}
    broken: set[str] = set()

    ann_dir = root / "Annotations"
    xml_files = sorted(p for p in ann_dir.glob("*.xml") if p.is_file()) if ann_dir.is_dir() else []
    for xml_file in xml_files:
        ident = xml_file.stem
        parsed = _parse_xml(root, xml_file, schema, problems)
        if parsed is None:
            broken.add(ident)
            continue
        where = rel(root, xml_file)
        found = _resolve_image(root, jpeg_dir, parsed.filename, ident, where, problems)
        if found is None:
            broken.add(ident)
            continue
        key, path = found
        if key in samples:
            problems.append(Problem(where, f"image {key} is already annotated by another XML file",
                                    record="filename"))
            continue
        entry = membership.get(ident)
        samples[key] = SourceSample(key=key, path=path, labels=parsed.labels,
                                    split=entry.split if entry else None,
                                    width=parsed.width, height=parsed.height)
        id_to_key[ident] = key
        object_classes[key] = {lb.class_name for lb in parsed.labels}

    for ident, entry in membership.items():
        if ident in id_to_key or ident in broken:
            continue
        image = _find_by_stem(root, jpeg_dir, ident)
        if image is not None:
            key, path = image.relative_to(jpeg_dir).as_posix(), os.path.abspath(image)
        else:
            key, path = f"{ident}.jpg", None
            problems.append(Problem(entry.file, f"no annotation or image for id {ident!r}",
                                    record=f"line {entry.line}"))
        id_to_key[ident] = key
        if key not in samples:
            samples[key] = SourceSample(key=key, path=path, split=entry.split)

    if jpeg_dir.is_dir():
        for image in walk_images(root, jpeg_dir, problems):
            key = image.relative_to(jpeg_dir).as_posix()
            ident = _export_id(key)
            if key in samples or ident in broken:
                continue
            entry = membership.get(ident)
            samples[key] = SourceSample(key=key, path=os.path.abspath(image),
                                        split=entry.split if entry else None)
            id_to_key.setdefault(ident, key)

    _read_image_labels(root, main, class_files, split_files, schema, samples, id_to_key,
                       object_classes, problems)
    for ident, key in sorted(id_to_key.items()):
        sample = samples.get(key)
        if sample is not None:
            masks = _read_masks(root, ident, sample, schema, problems)
            if masks is None:
                del samples[key]
            else:
                sample.labels += masks

    if split is not None:
        for sample in samples.values():
            sample.split = split
    return SourceDataset(samples=[samples[k] for k in sorted(samples)], classes=schema.final_classes(),
                         problems=problems, format=FORMAT)


# ---- labelmap and lists


def _read_labelmap(root: Path, problems: list[Problem]) -> _Schema:
    path = root / "labelmap.txt"
    if not path.is_file():
        schema = _Schema(classes=list(VOC_CLASSES), declared=False)
        schema.colors = class_colors([BACKGROUND, *VOC_CLASSES, IGNORED])
        return schema
    schema = _Schema(classes=[], declared=True)
    text = read_text(path, root, problems) or ""
    explicit: dict[str, tuple[int, int, int]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.rsplit(":", 3) if line.count(":") >= 3 else line.split(":")
        name = fields[0].strip()
        if not name or name in schema.classes:
            problems.append(Problem("labelmap.txt", f"empty or repeated class name {name!r}", record=f"line {n}"))
            continue
        schema.classes.append(name)
        color = fields[1].strip() if len(fields) > 1 else ""
        if color:
            try:
                rgb = tuple(int(c) for c in color.split(","))
            except ValueError:
                rgb = ()
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                problems.append(Problem("labelmap.txt", f"bad colour {color!r}: expected r,g,b",
                                        record=f"line {n}"))
            else:
                explicit[name] = rgb  # type: ignore[assignment]
    schema.colors = {**class_colors(schema.classes), **explicit}
    return schema


def _main_lists(folder: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Split list stems (``trainval`` last) and ``(class, split)`` pairs of per-class lists."""
    if not folder.is_dir():
        return [], []
    stems = sorted(p.stem for p in folder.glob("*.txt") if p.is_file())
    splits, per_class = [], []
    for stem in stems:
        owner = next((s for s in stems if s != stem and stem.endswith("_" + s) and len(stem) > len(s) + 1), None)
        if owner is None:
            splits.append(stem)
        else:
            per_class.append((stem[: -len(owner) - 1], owner))
    splits.sort(key=lambda s: (s == "trainval", s))
    return splits, per_class


def _split_name(stem: str) -> str | None:
    return None if stem == "default" else stem


def _membership(root: Path, folder: Path, split_files: list[str],
                problems: list[Problem]) -> dict[str, _ListEntry]:
    """Image id → the split list that names it first."""
    members: dict[str, _ListEntry] = {}
    for stem in split_files:
        path = folder / f"{stem}.txt"
        text = read_text(path, root, problems)
        if text is None:
            continue
        where = rel(root, path)
        for n, line in enumerate(text.splitlines(), 1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            ident = tokens[0]
            try:
                safe_join(root / "Annotations", f"{ident}.xml")
            except UnsafePath as e:
                problems.append(Problem(where, str(e), record=f"line {n}"))
                continue
            members.setdefault(ident, _ListEntry(_split_name(stem), where, n))
    return members


def _find_by_stem(root: Path, folder: Path, stem: str) -> Path | None:
    for ext in (*_IMAGE_EXTS, *(e.upper() for e in _IMAGE_EXTS)):
        try:
            path = safe_join(folder, stem + ext)
            safe_join(root, rel(root, path))
        except UnsafePath:
            return None
        if path.is_file():
            return path
    return None


def _resolve_image(root: Path, jpeg_dir: Path, filename: str | None, ident: str, where: str,
                   problems: list[Problem]) -> tuple[str, str | None] | None:
    """``(key, absolute path or None)`` of an XML's image; ``None`` when the name is unsafe."""
    path: Path | None = None
    if filename:
        try:
            path = safe_join(jpeg_dir, filename)
            safe_join(root, rel(root, path))
        except UnsafePath as e:
            problems.append(Problem(where, str(e), record="filename"))
            return None
        if path.is_file():
            return path.relative_to(jpeg_dir).as_posix(), os.path.abspath(path)
    found = (_find_by_stem(root, path.parent, path.stem) if path is not None else None) \
        or _find_by_stem(root, jpeg_dir, ident)
    if found is not None:
        return found.relative_to(jpeg_dir).as_posix(), os.path.abspath(found)
    key = path.relative_to(jpeg_dir).as_posix() if path is not None else f"{ident}.jpg"
    problems.append(Problem(where, f"image JPEGImages/{key} does not exist", record=f"image {key}"))
    return key, None


# ---- XML


@dataclass
class _Annotation:
    filename: str | None
    width: int | None
    height: int | None
    labels: list[SourceLabel]


def _text(el: Any, tag: str) -> str | None:
    child = el.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _flag(text: str | None) -> bool:
    if text is None:
        return False
    try:
        return float(text) != 0
    except ValueError:
        return text.lower() in ("true", "yes")


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        v = float(text)
    except ValueError:
        return text
    return v if math.isfinite(v) else text


def _parse_xml(root: Path, path: Path, schema: _Schema, problems: list[Problem]) -> _Annotation | None:
    import defusedxml.ElementTree as ET
    from defusedxml import DefusedXmlException

    where = rel(root, path)
    try:
        if path.stat().st_size > MAX_ANNOTATION_BYTES:
            problems.append(Problem(where, "annotation file is too large"))
            return None
        tree = ET.parse(path)
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        problems.append(Problem(where, f"malformed XML: {e}", record=f"line {line}" if line else None))
        return None
    except DefusedXmlException as e:
        problems.append(Problem(where, f"unsafe XML refused: {e}"))
        return None
    except OSError as e:
        problems.append(Problem(where, f"cannot read: {e.strerror or e}"))
        return None
    ann = tree.getroot()
    if ann.tag != "annotation":
        problems.append(Problem(where, f"root element is <{ann.tag}>, expected <annotation>"))
        return None

    width = height = None
    size = ann.find("size")
    if size is not None:
        try:
            w, h = float(_text(size, "width") or 0), float(_text(size, "height") or 0)
        except ValueError:
            problems.append(Problem(where, "non-numeric <size>", record="size"))
        else:
            if w > 0 and h > 0:
                width, height = int(w), int(h)

    labels = []
    for i, obj in enumerate(ann.findall("object"), 1):
        label = _parse_object(obj, width, height, schema, where, f"object {i}", problems)
        if isinstance(label, str):
            problems.append(Problem(where, label, record=f"object {i}"))
        elif label is not None:
            labels.append(label)
    return _Annotation(_text(ann, "filename"), width, height, labels)


def _bndbox(el: Any, width: int | None, height: int | None) -> tuple[float, float, float, float] | str:
    """A ``<bndbox>`` (1-based, inclusive) → ``(x, y, w, h)``, or what is wrong with it."""
    bb = el.find("bndbox")
    if bb is None:
        return "missing <bndbox>"
    values = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(bb, tag)
        if text is None:
            return f"missing <{tag}> in <bndbox>"
        try:
            v = float(text)
        except ValueError:
            return f"non-numeric <{tag}> {text!r}"
        if not math.isfinite(v):
            return f"non-numeric <{tag}> {text!r}"
        values.append(v)
    xmin, ymin, xmax, ymax = values
    if xmax < xmin or ymax < ymin:
        return f"xmax < xmin or ymax < ymin in box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})"
    if xmin < 0 or ymin < 0 or (width and xmax > width) or (height and ymax > height):
        return f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) is outside the image size {width}x{height}"
    return xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1


def _parse_object(obj: Any, width: int | None, height: int | None, schema: _Schema, where: str,
                  record: str, problems: list[Problem]) -> SourceLabel | str | None:
    name = _text(obj, "name")
    if name is None:
        return "missing <name>"
    box = _bndbox(obj, width, height)
    if isinstance(box, str):
        return box
    if not schema.accept(name):
        return f"class {name!r} is not declared in labelmap.txt"
    attributes: dict[str, Any] = {flag: _flag(_text(obj, flag)) for flag in FLAGS}
    pose = _text(obj, "pose")
    if pose is not None:
        attributes["pose"] = pose
    parts = []
    for j, part in enumerate(obj.findall("part"), 1):
        part_name = _text(part, "name")
        part_box = _bndbox(part, width, height) if part_name else "missing <name>"
        if isinstance(part_box, str):
            problems.append(Problem(where, f"part: {part_box}", record=f"{record} part {j}"))
            continue
        parts.append({"name": part_name, "bbox": list(part_box)})
    if parts:
        attributes["parts"] = parts
    actions = obj.find("actions")
    if actions is not None:
        attributes["actions"] = {a.tag: _flag((a.text or "").strip() or None) for a in actions}
    extra = obj.find("attributes")
    if extra is not None:
        for attr in extra.findall("attribute"):
            key, value = _text(attr, "name"), _text(attr, "value")
            if key is not None and key not in _RESERVED_ATTRIBUTES:
                attributes[key] = _value(value) if value is not None else ""
    return SourceLabel(kind=LabelKind.BOX, class_name=name, bbox=box, attributes=attributes)


# ---- image-level labels and masks


def _read_image_labels(root: Path, main: Path, class_files: list[tuple[str, str]], split_files: list[str],
                       schema: _Schema, samples: dict[str, SourceSample], id_to_key: dict[str, str],
                       object_classes: dict[str, set[str]], problems: list[Problem]) -> None:
    """``<class>_<split>.txt`` positives not explained by an object → classification labels."""
    found: dict[str, set[str]] = {}
    for cls, split_stem in class_files:
        path = main / f"{cls}_{split_stem}.txt"
        text = read_text(path, root, problems)
        if text is None:
            continue
        where = rel(root, path)
        for n, line in enumerate(text.splitlines(), 1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            if len(tokens) != 2 or tokens[1] not in ("1", "0", "-1"):
                problems.append(Problem(where, "expected '<image id> <1|0|-1>'", record=f"line {n}"))
                continue
            if tokens[1] != "1":
                continue
            key = id_to_key.get(tokens[0])
            if key is None or key not in samples:
                problems.append(Problem(where, f"unknown image id {tokens[0]!r}", record=f"line {n}"))
                continue
            if cls in object_classes.get(key, ()):
                continue
            if not schema.accept(cls):
                problems.append(Problem(where, f"class {cls!r} is not declared in labelmap.txt",
                                        record=f"line {n}"))
                continue
            found.setdefault(key, set()).add(cls)
    order = {c: i for i, c in enumerate(schema.final_classes())}
    for key, names in found.items():
        samples[key].labels += [SourceLabel(kind=LabelKind.CLASSIFICATION, class_name=c)
                                for c in sorted(names, key=order.__getitem__)]


def _read_masks(root: Path, ident: str, sample: SourceSample, schema: _Schema,
                problems: list[Problem]) -> list[SourceLabel] | None:
    """Mask labels of one sample; ``None`` when its PNGs are unusable (sample left out)."""
    obj_path = root / "SegmentationObject" / f"{ident}.png"
    cls_path = root / "SegmentationClass" / f"{ident}.png"
    arrays: dict[str, np.ndarray | None] = {}
    for which, path in (("object", obj_path), ("class", cls_path)):
        arrays[which] = None
        if not path.is_file():
            continue
        where = rel(root, path)
        try:
            safe_join(root, where)
            arrays[which] = load_codes(path)
        except UnsafePath as e:
            problems.append(Problem(where, str(e)))
            return None
        except (OSError, ValueError, SyntaxError) as e:
            problems.append(Problem(where, f"cannot read mask image: {e}"))
            return None
        shape = arrays[which].shape  # type: ignore[union-attr]
        if sample.width and sample.height and shape != (sample.height, sample.width):
            problems.append(Problem(where, f"mask is {shape[1]}x{shape[0]} but the image is "
                                           f"{sample.width}x{sample.height}"))
            return None
    objects, classes = arrays["object"], arrays["class"]
    if objects is None and classes is None:
        return []
    if classes is None:
        problems.append(Problem(rel(root, obj_path), f"no SegmentationClass/{ident}.png to give the "
                                                     f"instances their classes"))
        return None
    if objects is not None and objects.shape != classes.shape:
        problems.append(Problem(rel(root, obj_path), "SegmentationObject and SegmentationClass sizes differ"))
        return None

    by_color = {code(c): name for name, c in schema.colors.items()}
    labels = []
    if objects is None:  # semantic segmentation only: one mask per class colour
        order = {c: i for i, c in enumerate(schema.final_classes())}
        found = []
        for value in np.unique(classes).tolist():
            if value in (0, VOID_CODE):
                continue
            name = by_color.get(value)
            if name is None or not schema.accept(name):
                problems.append(Problem(rel(root, cls_path), f"colour {uncode(value)} is not a known class"))
                continue
            found.append((order.get(name, len(order)), name, value))
        return [mask_label(classes == value, name) for _, name, value in sorted(found)]

    instances = sorted((voc_index(uncode(c)), c) for c in np.unique(objects).tolist()
                       if c not in (0, VOID_CODE))
    for index, value in instances:
        pixels = objects == value
        values, counts = np.unique(classes[pixels], return_counts=True)
        class_code = int(values[int(np.argmax(counts))])
        name = by_color.get(class_code)
        if name is None or not schema.accept(name):
            problems.append(Problem(rel(root, cls_path), f"colour {uncode(class_code)} under instance "
                                                         f"{index} is not a known class",
                                    record=f"instance {index}"))
            continue
        labels.append(mask_label(pixels, name))
    return labels


# --------------------------------------------------------------------------- export


def _export_id(key: str) -> str:
    """The file stem used for ``key`` in ``Annotations/`` and the ``ImageSets`` lists."""
    return re.sub(r"\s", "_", strip_ext(key).replace("/", "__"))


def _num(v: float) -> str:
    r = round(float(v), 6)
    if r.is_integer():
        return str(int(r))
    return f"{r:.6f}".rstrip("0").rstrip(".")


def _attr_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def _bndbox_xml(box: Any, indent: str) -> list[str]:
    x, y, w, h = (float(v) for v in box)
    return [f"{indent}<bndbox>",
            f"{indent}  <xmin>{_num(x + 1)}</xmin>", f"{indent}  <ymin>{_num(y + 1)}</ymin>",
            f"{indent}  <xmax>{_num(x + w)}</xmax>", f"{indent}  <ymax>{_num(y + h)}</ymax>",
            f"{indent}</bndbox>"]


def _object_box(label: SourceLabel) -> tuple[float, float, float, float] | None:
    if label.kind in (LabelKind.BOX, LabelKind.KEYPOINTS) and label.bbox is not None:
        return label.bbox
    if label.kind is LabelKind.POLYGON:
        if label.bbox is not None:
            return label.bbox
        if label.polygon:
            from viewfinder.core.geometry import polygons_bbox

            return polygons_bbox(label.polygon)
    return None


def _object_xml(label: SourceLabel, box: tuple[float, float, float, float]) -> list[str]:
    attrs = label.attributes
    lines = ["  <object>", f"    <name>{escape(label.class_name)}</name>"]
    if attrs.get("pose") is not None:
        lines.append(f"    <pose>{escape(str(attrs['pose']))}</pose>")
    lines += [f"    <{flag}>{1 if attrs.get(flag) else 0}</{flag}>" for flag in FLAGS]
    lines += _bndbox_xml(box, "    ")
    for part in attrs.get("parts") or []:
        if isinstance(part, dict) and part.get("name") and part.get("bbox") and len(part["bbox"]) == 4:
            lines += ["    <part>", f"      <name>{escape(str(part['name']))}</name>",
                      *_bndbox_xml(part["bbox"], "      "), "    </part>"]
    actions = attrs.get("actions")
    if isinstance(actions, dict) and actions:
        lines.append("    <actions>")
        lines += [f"      <{a}>{1 if actions[a] else 0}</{a}>" for a in sorted(actions) if _XML_NAME.match(a)]
        lines.append("    </actions>")
    extra = sorted(k for k, v in attrs.items() if k not in _RESERVED_ATTRIBUTES and v is not None)
    if extra:
        lines.append("    <attributes>")
        for k in extra:
            lines += ["      <attribute>", f"        <name>{escape(k)}</name>",
                      f"        <value>{escape(_attr_text(attrs[k]))}</value>", "      </attribute>"]
        lines.append("    </attributes>")
    lines.append("  </object>")
    return lines


def _annotation_xml(sample: SourceSample, objects: list[tuple[SourceLabel, Any]], segmented: bool) -> bytes:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotation>", "  <folder></folder>",
             f"  <filename>{escape(sample.key)}</filename>"]
    if sample.width and sample.height:
        lines += ["  <size>", f"    <width>{int(sample.width)}</width>",
                  f"    <height>{int(sample.height)}</height>", "    <depth>3</depth>", "  </size>"]
    lines.append(f"  <segmented>{1 if segmented else 0}</segmented>")
    for label, box in objects:
        lines += _object_xml(label, box)
    lines.append("</annotation>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _segmentation(sample: SourceSample, masks: list[SourceLabel],
                  colors: dict[str, tuple[int, int, int]]) -> tuple[bytes, bytes] | None:
    decoded = [(lb, decode_mask(lb.mask)) for lb in masks if lb.mask]
    if not decoded:
        return None
    shape = (sample.height, sample.width) if sample.width and sample.height else decoded[0][1].shape
    objects = np.zeros(shape, dtype=np.int64)
    classes = np.zeros(shape, dtype=np.int64)
    index = 0
    for label, mask in decoded:
        if mask.shape != shape:
            continue
        index += 1 + (index + 1 == VOID_INDEX)
        objects[mask] = code(voc_color(index))
        classes[mask] = code(colors[label.class_name])
    return png(objects), png(classes)


def _split_stem(split: str | None) -> str:
    return split if split is not None and _PLAIN_NAME.match(split) else "default"


def write(out: Path, items: Sequence[ExportItem], classes: list[str], images: ImageWriter) -> None:
    """Write ``items`` as a Pascal VOC dataset into ``out`` (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    classes = export_classes(classes, [lb.class_name for it in items for lb in it.sample.labels])
    colors = class_colors(classes)
    used_ids: set[str] = set()
    split_ids: dict[str, list[str]] = {}
    seg_ids: dict[str, list[str]] = {}
    image_level: dict[str, dict[str, int]] = {}  # id → class → 1 / 0
    any_classification = False
    parts_of: dict[str, set[str]] = {}
    actions_of: dict[str, set[str]] = {}

    for item in sorted(items, key=lambda it: it.sample.key):
        sample = item.sample
        ident = base = _export_id(sample.key)
        n = 0
        while ident in used_ids:
            n += 1
            ident = f"{base}-{n}"
        used_ids.add(ident)
        stem = _split_stem(sample.split)
        split_ids.setdefault(stem, []).append(ident)

        objects = []
        masks = []
        present: dict[str, int] = {}
        for label in sample.labels:
            if label.kind is LabelKind.CLASSIFICATION:
                any_classification = True
                present[label.class_name] = 1
            elif label.kind is LabelKind.MASK:
                masks.append(label)
            elif (box := _object_box(label)) is not None:
                objects.append((label, box))
                value = 0 if label.attributes.get("difficult") else 1
                present[label.class_name] = max(present.get(label.class_name, 0), value)
                for part in label.attributes.get("parts") or []:
                    if isinstance(part, dict) and part.get("name"):
                        parts_of.setdefault(label.class_name, set()).add(str(part["name"]))
                if isinstance(label.attributes.get("actions"), dict):
                    actions_of.setdefault(label.class_name, set()).update(label.attributes["actions"])
        image_level[ident] = present

        images.place(item.content_hash, out_path(out, f"JPEGImages/{sample.key}"))
        segmentation = _segmentation(sample, masks, colors) if masks else None
        write_bytes(out_path(out, f"Annotations/{ident}.xml"),
                    _annotation_xml(sample, objects, segmented=segmentation is not None))
        if segmentation is not None:
            write_bytes(out_path(out, f"SegmentationObject/{ident}.png"), segmentation[0])
            write_bytes(out_path(out, f"SegmentationClass/{ident}.png"), segmentation[1])
            seg_ids.setdefault(stem, []).append(ident)

    for stem, ids in split_ids.items():
        write_bytes(out / "ImageSets" / "Main" / f"{stem}.txt", "".join(f"{i}\n" for i in sorted(ids)).encode())
        if any_classification:
            for cls in classes:
                if not _PLAIN_NAME.match(cls):
                    continue
                lines = []
                for i in sorted(ids):
                    value = image_level[i].get(cls)
                    lines.append(f"{i} {1 if value == 1 else 0 if value == 0 else -1:>2}\n")
                write_bytes(out / "ImageSets" / "Main" / f"{cls}_{stem}.txt", "".join(lines).encode())
    for stem, ids in seg_ids.items():
        write_bytes(out / "ImageSets" / "Segmentation" / f"{stem}.txt",
                    "".join(f"{i}\n" for i in sorted(ids)).encode())

    labelmap = ["# label:color_rgb:parts:actions"]
    for cls in classes:
        r, g, b = colors[cls]
        labelmap.append(f"{cls}:{r},{g},{b}:{','.join(sorted(parts_of.get(cls, ())))}:"
                        f"{','.join(sorted(actions_of.get(cls, ())))}")
    write_bytes(out / "labelmap.txt", ("\n".join(labelmap) + "\n").encode())
