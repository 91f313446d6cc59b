"""CVAT for images 1.1 XML: importer (no exporter).

Reads every ``*.xml`` at the root: a project export (``annotations.xml`` whose ``<image>``
elements carry ``subset``), a task export, or Datumaro's layout of one ``<subset>.xml`` per
subset. XML is parsed with defusedxml, streaming (``<image>`` elements are dropped once read).

- Image root: ``root/images`` if it exists, else ``root``; an image's file is the first of
  ``images/<subset>/<name>``, ``images/<name>``, ``<name>`` that exists. The sample key is
  its path relative to the image root.
- Split: the image's ``subset``, else its task's subset from ``<meta>``, else the file's
  name (``train.xml`` → ``train``; not for ``annotations.xml``); ``default`` means none.
  The ``split`` argument overrides all of them.
- Shapes: ``box`` → BOX (a rotated box → POLYGON of its corners, with ``rotation``),
  ``polygon`` → POLYGON, ``polyline`` and ``points`` → KEYPOINTS (every point visible,
  attribute ``cvat_type`` says which), ``mask`` → MASK (full-image COCO RLE), ``tag`` →
  CLASSIFICATION. ``occluded``, ``z_order``, ``source``, ``group_id`` and the
  ``<attribute>`` children become attributes, typed by the label spec in ``<meta>``
  (checkbox → bool, number → int/float, else the text as written).
- ``source_id``: the shape's ``id`` attribute if present, else ``"<image id>:<index>"`` (the
  shape's position in its ``<image>``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from viewfinder.core.geometry import polygons_bbox
from viewfinder.core.types import LabelKind, Problem, SourceDataset, SourceLabel, SourceSample
from viewfinder.errors import InvalidInput
from viewfinder.formats import _rle
from viewfinder.formats.base import MAX_ANNOTATION_BYTES, UnsafePath, find_image, image_key

FORMAT = "cvat"

_HEAD = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*"
    rb"<annotations(?:\s[^>]*)?>\s*(?:<!--.*?-->\s*)*<version>",
    re.S,
)
_SHAPES = frozenset({"box", "polygon", "polyline", "points", "mask", "tag"})
_UNSUPPORTED = frozenset({"ellipse", "cuboid", "skeleton"})
_INT = re.compile(r"[+-]?[0-9]+")


def _looks_like_cvat(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return _HEAD.match(head) is not None


def detect(root: Path) -> bool:
    """True if a ``*.xml`` at the root has an ``<annotations>`` root with a ``<version>``."""
    root = Path(root)
    if not root.is_dir():
        return False
    return any(_looks_like_cvat(p) for p in sorted(root.glob("*.xml"))[:20] if p.is_file())


class _Bad(Exception):
    """A record is wrong; the message becomes a Problem."""


@dataclass
class _FileContext:
    rel: str
    default_subset: str | None
    label_specs: dict[str, dict[str, str]] | None = None
    """label name → attribute name → input_type; None until <meta> declares labels."""
    task_subsets: dict[str, str] = field(default_factory=dict)
    seen_ids: set[tuple[str | None, str | None, int]] = field(default_factory=set)
    samples: list[SourceSample] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    tracks: int = 0


def _split_of(subset: str | None) -> str | None:
    return None if subset in (None, "", "default") else subset


def _int_attr(el: Element, name: str, *, required: bool = True) -> int | None:
    raw = el.get(name)
    if raw is None:
        if required:
            raise _Bad(f"missing {name}")
        return None
    raw = raw.strip()
    if _INT.fullmatch(raw):
        return int(raw)
    try:
        value = float(raw)
    except ValueError:
        raise _Bad(f"{name}={raw!r} is not a number") from None
    if not value.is_integer():
        raise _Bad(f"{name}={raw!r} is not an integer")
    return int(value)


def _float_attr(el: Element, name: str) -> float:
    raw = el.get(name)
    if raw is None:
        raise _Bad(f"missing {name}")
    try:
        value = float(raw)
    except ValueError:
        raise _Bad(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise _Bad(f"{name}={raw!r} is not a finite number")
    return value


def _points(el: Element, minimum: int) -> list[float]:
    raw = el.get("points")
    if raw is None:
        raise _Bad("missing points")
    flat: list[float] = []
    for pair in raw.split(";"):
        parts = pair.split(",")
        if len(parts) != 2:
            raise _Bad(f"points must be 'x,y;x,y;...', got {pair!r}")
        try:
            x, y = float(parts[0]), float(parts[1])
        except ValueError:
            raise _Bad(f"point {pair!r} is not a pair of numbers") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise _Bad(f"point {pair!r} is not finite")
        flat += [x, y]
    if len(flat) < 2 * minimum:
        raise _Bad(f"needs at least {minimum} point(s), got {len(flat) // 2}")
    return flat


def _typed(value: str, input_type: str | None) -> Any:
    if input_type == "number":
        text = value.strip()
        if _INT.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    if input_type in ("checkbox", None) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _attributes(el: Element, spec: dict[str, str]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    occluded = el.get("occluded")
    if occluded is not None:
        attrs["occluded"] = occluded.strip().lower() in ("1", "true")
    for name in ("z_order", "group_id"):
        value = _int_attr(el, name, required=False)
        if value is not None:
            attrs[name] = value
    if el.get("source") is not None:
        attrs["source"] = el.get("source")
    for child in el:
        if child.tag != "attribute":
            continue
        name = child.get("name")
        if not name:
            raise _Bad("<attribute> without a name")
        attrs[name] = _typed(child.text or "", spec.get(name))
    return attrs


def _rotated_box(x0: float, y0: float, x1: float, y1: float, degrees: float) -> list[float]:
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    t = math.radians(degrees)
    cos, sin = math.cos(t), math.sin(t)
    ring: list[float] = []
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        dx, dy = x - cx, y - cy
        ring += [cx + dx * cos - dy * sin, cy + dx * sin + dy * cos]
    return ring


def _shape(el: Element, label_name: str, spec: dict[str, str], width: int | None,
           height: int | None) -> SourceLabel:
    """One CVAT shape as a SourceLabel; ``_Bad`` if invalid."""
    tag = el.tag
    attrs = _attributes(el, spec)
    label = SourceLabel(kind=LabelKind.CLASSIFICATION, class_name=label_name, attributes=attrs)
    if tag == "box":
        x0, y0, x1, y1 = (_float_attr(el, n) for n in ("xtl", "ytl", "xbr", "ybr"))
        if x1 < x0 or y1 < y0:
            raise _Bad(f"box has xbr < xtl or ybr < ytl ({x0:g},{y0:g} → {x1:g},{y1:g})")
        rotation = _float_attr(el, "rotation") if el.get("rotation") is not None else 0.0
        if rotation % 360:
            label.kind = LabelKind.POLYGON
            label.polygon = [_rotated_box(x0, y0, x1, y1, rotation)]
            label.bbox = polygons_bbox(label.polygon)
            attrs.update(cvat_type="box", rotation=rotation)
        else:
            label.kind = LabelKind.BOX
            label.bbox = (x0, y0, x1 - x0, y1 - y0)
    elif tag == "polygon":
        label.kind = LabelKind.POLYGON
        label.polygon = [_points(el, 3)]
        label.bbox = polygons_bbox(label.polygon)
    elif tag in ("polyline", "points"):
        flat = _points(el, 2 if tag == "polyline" else 1)
        label.kind = LabelKind.KEYPOINTS
        label.keypoints = [v for i in range(0, len(flat), 2) for v in (flat[i], flat[i + 1], 2.0)]
        label.bbox = polygons_bbox([flat])
        attrs["cvat_type"] = tag
    elif tag == "mask":
        if width is None or height is None:
            raise _Bad("a mask needs the image's width and height")
        raw = el.get("rle")
        if raw is None:
            raise _Bad("missing rle")
        try:
            runs = [int(v) for v in raw.replace(" ", "").split(",") if v != ""]
        except ValueError:
            raise _Bad("mask rle must be comma-separated integers") from None
        left, top, w, h = (_int_attr(el, n) for n in ("left", "top", "width", "height"))
        try:
            label.mask = _rle.from_cvat(runs, left, top, w, h, width, height)  # type: ignore[arg-type]
        except _rle.BadMask as e:
            raise _Bad(str(e)) from None
        label.kind = LabelKind.MASK
        label.bbox = _rle.bbox(label.mask)
    return label


class _Reader:
    def __init__(self, root: Path, split: str | None) -> None:
        self.root = root
        self.override = split
        self.image_root = root / "images" if (root / "images").is_dir() else root
        self.problems: list[Problem] = []
        self.samples: dict[str, SourceSample] = {}
        self.classes: list[str] = []

    def problem(self, rel: str, message: str, record: str | None = None) -> None:
        self.problems.append(Problem(rel, message, record))

    def _add_class(self, name: str) -> None:
        if name not in self.classes:
            self.classes.append(name)

    def read_file(self, path: Path) -> None:
        from defusedxml import DefusedXmlException
        from defusedxml.ElementTree import iterparse

        rel = path.relative_to(self.root).as_posix()
        stem_subset = None if path.stem == "annotations" else path.stem
        ctx = _FileContext(rel=rel, default_subset=stem_subset)
        try:
            if path.stat().st_size > MAX_ANNOTATION_BYTES:
                self.problem(rel, "annotation file is too large")
                return
            with open(path, "rb") as f:
                if not self._parse(iterparse(f, events=("start", "end")), ctx):
                    return
        except ParseError as e:
            line, column = getattr(e, "position", (0, 0))
            reason = re.sub(r":? line \d+, column \d+$", "", str(e))
            self.problem(rel, f"malformed XML at line {line}, column {column}: {reason}; "
                              f"nothing from this file is imported")
            return
        except DefusedXmlException as e:
            self.problem(rel, f"forbidden XML construct ({type(e).__name__}); nothing from "
                              f"this file is imported")
            return
        except OSError as e:
            self.problem(rel, f"cannot read: {e}")
            return
        if ctx.tracks:
            self.problem(rel, f"{ctx.tracks} <track> element(s) (CVAT for video) left out; "
                              f"export the task as CVAT for images")
        for sample in ctx.samples:
            self.samples[sample.key] = sample

    def _parse(self, events: Iterator[tuple[str, Element]], ctx: _FileContext) -> bool:
        """Walk the parse events; False if the root element is not <annotations>."""
        depth = 0
        top: Element | None = None
        for event, el in events:
            if event == "start":
                depth += 1
                if depth == 1:
                    if el.tag != "annotations":
                        self.problem(ctx.rel, f"not a CVAT for images file: the root element "
                                              f"is <{el.tag}>, not <annotations>")
                        return False
                    top = el
                continue
            depth -= 1
            if depth != 1 or top is None:
                continue
            if el.tag == "meta":
                self._meta(el, ctx)
            elif el.tag == "image":
                self._image(el, ctx)
            elif el.tag == "track":
                ctx.tracks += 1
            top.remove(el)  # keep memory flat on large files
        return True

    def _meta(self, meta: Element, ctx: _FileContext) -> None:
        specs: dict[str, dict[str, str]] = {}
        for label in meta.iter("label"):
            name = label.findtext("name")
            if not name:
                continue
            attrs: dict[str, str] = {}
            for attr in label.iter("attribute"):
                attr_name = attr.findtext("name")
                if attr_name:
                    attrs[attr_name] = (attr.findtext("input_type") or "").strip()
            specs.setdefault(name, attrs)
            self._add_class(name)
        if specs:
            ctx.label_specs = specs
        for task in meta.iter("task"):
            subset = task.findtext("subset")
            task_id = task.findtext("id")
            if task_id and subset:
                ctx.task_subsets[task_id.strip()] = subset
        single = meta.find("task")
        if single is not None and single.findtext("subset"):
            ctx.default_subset = single.findtext("subset")

    def _resolve(self, name: str, subset: str | None) -> Path | None:
        return find_image(self.root, name, [f"images/{subset}", "images", ""] if subset else ["images", ""])

    def _key(self, path: Path) -> str:
        return image_key(self.root, self.image_root, path)

    def _image(self, el: Element, ctx: _FileContext) -> None:
        rel, name = ctx.rel, el.get("name")
        rec = f"image id={el.get('id')}" + (f" ({name})" if name else "")
        try:
            image_id = _int_attr(el, "id") or 0  # required: never None here
            width = _int_attr(el, "width", required=False)
            height = _int_attr(el, "height", required=False)
        except _Bad as e:
            self.problem(rel, str(e), rec)
            return
        if (width is not None and width <= 0) or (height is not None and height <= 0):
            self.problem(rel, f"image size {width}x{height} is not positive", rec)
            return
        subset = el.get("subset") or ctx.task_subsets.get(el.get("task_id") or "") \
            or ctx.default_subset
        ident = (el.get("task_id"), subset, image_id)
        if ident in ctx.seen_ids:
            self.problem(rel, "duplicate image id", rec)
            return
        ctx.seen_ids.add(ident)
        if not name:
            self.problem(rel, "image has no name", rec)
            return
        try:
            path = self._resolve(name, subset)
        except UnsafePath as e:
            self.problem(rel, str(e), rec)
            return
        if path is None:
            self.problem(rel, "image file not found; the image and its shapes are left out", rec)
            return
        key = self._key(path)
        if key in self.samples or key in ctx.keys:
            self.problem(rel, f"image file {key} is already named by another <image>", rec)
            return
        sample = SourceSample(key=key, path=str(path), width=width, height=height,
                              split=self.override if self.override is not None
                              else _split_of(subset))
        for index, shape in enumerate(el):
            srec = f"{rec}, {shape.tag} #{index}"
            label = self._label(shape, ctx, width, height, rel, srec)
            if label is not None:
                label.source_id = shape.get("id") or f"{image_id}:{index}"
                sample.labels.append(label)
        ctx.samples.append(sample)
        ctx.keys.add(key)

    def _label(self, shape: Element, ctx: _FileContext, width: int | None, height: int | None,
               rel: str, rec: str) -> SourceLabel | None:
        if shape.tag not in _SHAPES:
            what = "unsupported shape" if shape.tag in _UNSUPPORTED else "unknown element"
            self.problem(rel, f"{what} <{shape.tag}> left out", rec)
            return None
        label_name = shape.get("label")
        if not label_name:
            self.problem(rel, "shape has no label", rec)
            return None
        if ctx.label_specs is not None and label_name not in ctx.label_specs:
            self.problem(rel, f"unknown label {label_name!r} (not declared in <meta>)", rec)
            return None
        spec = (ctx.label_specs or {}).get(label_name, {})
        try:
            label = _shape(shape, label_name, spec, width, height)
        except _Bad as e:
            self.problem(rel, str(e), rec)
            return None
        self._add_class(label_name)
        return label


def read(root: Path, *, split: str | None = None) -> SourceDataset:
    """Import CVAT for images 1.1 XML files at ``root`` (see the module docstring).

    Args:
        root: the export folder (``*.xml`` at its top, images under ``images/``).
        split: if given, every sample gets this split.

    Raises:
        InvalidInput: ``root`` is not a folder. Every other problem is reported in
        ``SourceDataset.problems`` and the bad record is left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder", path=str(root))
    root = root.absolute()
    reader = _Reader(root, split)
    files = sorted(p for p in root.glob("*.xml") if p.is_file())
    if not files:
        reader.problem(".", "no CVAT XML files (*.xml) in the folder")
    for path in files:
        reader.read_file(path)
    samples = [reader.samples[k] for k in sorted(reader.samples)]
    return SourceDataset(samples=samples, classes=reader.classes, problems=reader.problems,
                         format=FORMAT)
