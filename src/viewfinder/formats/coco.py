"""COCO JSON: importer and exporter.

Layout read::

    root/
      annotations/<task>_<split>.json     task: instances, person_keypoints, stuff, labels,
                                          panoptic, image_info, captions
      annotations/panoptic_<split>/*.png  panoptic segment maps
      images/<split>/<file_name>          or images/<file_name>, <split>/<file_name>,
                                          <file_name> (the first that exists)

Without an ``annotations`` folder, the ``*.json`` files at the root are read. A file whose
name has no known task prefix is read as ``instances`` with no split; ``*_default.json``
also means no split.

Identity: a sample's key is its image path relative to the image root (``root/images`` if
that folder exists, else ``root``). The same image named by several task files of a split
is one sample carrying all their labels. Annotation ids of the ``instances``,
``person_keypoints`` and ``stuff`` files share one id space (as in the COCO release, where a
person's keypoint annotation has the id of its instance annotation): an annotation with
the id, image, category and box of one already read is the *same* object, and its
keypoints/segmentation are merged into that label. Its ``source_id`` is ``str(id)``.
Labels from ``labels_*`` and ``panoptic_*`` files (and same-id annotations that are a
different object) get ``"<task>:<id>"`` so ids stay unique per sample.

Keypoint names and skeletons live on COCO categories; Viewfinder's sources have no
category records, so they travel on each keypoints label as the reserved attributes
``_keypoint_names`` and ``_skeleton`` and the exporter puts them back on the categories.

Export writes ``annotations/instances_<split>.json`` (``instances_default.json`` for
samples without a split), ``labels_<split>.json`` for classification labels and
``captions_<split>.json`` for ``metadata["captions"]``, and places images at
``images/<key>``. Import → export → import gives the same keys, splits and labels.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from viewfinder.core.geometry import polygon_area, polygons_bbox
from viewfinder.core.memory import gc_paused
from viewfinder.core.types import (
    LabelKind,
    Problem,
    SourceDataset,
    SourceLabel,
    SourceSample,
)
from viewfinder.errors import InvalidInput
from viewfinder.formats import _rle
from viewfinder.formats.base import (
    ExportItem,
    ImageWriter,
    UnsafePath,
    dump_json,
    export_relpath,
    find_image,
    image_key,
    read_json,
    safe_join,
)

FORMAT = "coco"

KEYPOINT_NAMES_ATTR = "_keypoint_names"
"""Reserved label attribute: the keypoint names of the label's COCO category."""
SKELETON_ATTR = "_skeleton"
"""Reserved label attribute: the skeleton (pairs of keypoint indices) of its category."""
_RESERVED_ATTRS = (KEYPOINT_NAMES_ATTR, SKELETON_ATTR)

BBOX_TOLERANCE = 1.0
"""How far (pixels) a box may stick out of the image before it is a problem."""

# Longest first so that a prefix never shadows a longer task name.
_TASKS = ("person_keypoints", "image_info", "instances", "captions", "panoptic", "labels", "stuff")
_TASK_ORDER = ("instances", "person_keypoints", "stuff", "labels", "panoptic", "image_info",
               "captions")
_INSTANCE_FAMILY = frozenset({"instances", "person_keypoints", "stuff"})
_PLAIN_ID = re.compile(r"-?[0-9]+")
"""The ``source_id`` of an instance-family label: its annotation id (others are ``task:id``)."""
_HEAD_BYTES = 64 * 1024


# --------------------------------------------------------------------------- detect


def _task_and_split(stem: str) -> tuple[str, str | None, bool]:
    """``(task, split, known)`` from an annotation file's stem."""
    for task in _TASKS:
        if stem == task:
            return task, None, True
        if stem.startswith(task + "_"):
            split = stem[len(task) + 1:]
            return task, (None if split in ("", "default") else split), True
    return "instances", None, False


def _looks_like_coco(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return False
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and b'"images"' in head


def _annotation_files(root: Path) -> list[Path]:
    ann = root / "annotations"
    files = sorted(p for p in ann.glob("*.json") if p.is_file()) if ann.is_dir() else []
    return files or sorted(p for p in root.glob("*.json") if p.is_file())


def detect(root: Path) -> bool:
    """True for a folder with ``annotations/<task>_*.json`` or a COCO-looking JSON file."""
    root = Path(root)
    if not root.is_dir():
        return False
    files = _annotation_files(root)
    if any(_task_and_split(p.stem)[2] and p.parent.name == "annotations" for p in files):
        return True
    return any(_looks_like_coco(p) for p in files[:20])


# --------------------------------------------------------------------------- read


class _Bad(Exception):
    """A record is wrong; the message becomes a Problem."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_NUM_TYPES = frozenset({int, float})


def _finite(values: list[Any], what: str) -> list[float]:
    # Fast path: only plain ints/floats whose float sum is finite (so each one is). Anything
    # else (bools, subclasses, inf/nan, overflow) goes through the element-wise checks below.
    if _NUM_TYPES.issuperset(map(type, values)):
        try:
            out = list(map(float, values))
        except OverflowError:
            pass
        else:
            total = sum(out)
            if total - total == 0.0:
                return out
    if not all(_is_num(v) for v in values):
        raise _Bad(f"{what} must contain only numbers")
    try:
        out = [float(v) for v in values]
    except OverflowError:  # an integer beyond a float's range
        raise _Bad(f"{what} has a number too large for a float") from None
    if not all(math.isfinite(v) for v in out):
        raise _Bad(f"{what} has a non-finite number")
    return out


def _size_value(v: Any) -> int | None:
    if type(v) is int and v > 0:
        return v
    if v is None:
        return None
    if _is_int(v) and v > 0:
        return int(v)
    if isinstance(v, float) and v.is_integer() and v > 0:
        return int(v)
    raise _Bad(f"width and height must be positive integers, got {v!r}")


def _kind(label: SourceLabel) -> LabelKind:
    if label.keypoints is not None:
        return LabelKind.KEYPOINTS
    if label.polygon is not None:
        return LabelKind.POLYGON
    if label.mask is not None:
        return LabelKind.MASK
    if label.bbox is not None:
        return LabelKind.BOX
    return LabelKind.CLASSIFICATION


_ABSENT: Any = object()
_BOX, _CLASSIFICATION = LabelKind.BOX, LabelKind.CLASSIFICATION
_VISIBILITIES = frozenset({0.0, 1.0, 2.0})


def _plain_label(ann: dict[str, Any], class_name: str, width: int | None,
                 height: int | None) -> SourceLabel | None:
    """The common case of ``_label_from``, cheaply: a valid box (or no box) with no
    segmentation or keypoints. None when the annotation is anything else (or invalid), so
    that ``_label_from`` decides (and words the problem) exactly as always."""
    seg = ann.get("segmentation")
    if seg is not None and (type(seg) is not list or seg):
        return None
    kp = ann.get("keypoints")
    if kp is not None and (type(kp) is not list or kp):
        return None
    iscrowd = ann.get("iscrowd", 0)
    if iscrowd not in (0, 1):
        return None
    attributes = ann.get("attributes", _ABSENT)
    if attributes is not _ABSENT and type(attributes) is not dict:
        return None
    score = ann.get("score")
    if score is not None and (type(score) is not float or score - score != 0.0):
        return None
    raw = ann.get("bbox")
    if raw is None or (type(raw) is list and not raw):
        kind, bbox = _CLASSIFICATION, None
    else:
        if type(raw) is not list or len(raw) != 4:
            return None
        bbox = _checked_box(raw[0], raw[1], raw[2], raw[3], width, height)
        if bbox is None:
            return None
        kind = _BOX
    if not iscrowd and attributes is _ABSENT and score is None:
        return SourceLabel(kind=kind, class_name=class_name, bbox=bbox)
    return SourceLabel(kind=kind, class_name=class_name, bbox=bbox, iscrowd=bool(iscrowd),
                       attributes={} if attributes is _ABSENT else dict(attributes),
                       score=score)


def _checked_box(x: Any, y: Any, w: Any, h: Any, width: int | None,
                 height: int | None) -> tuple[float, float, float, float] | None:
    """``(x, y, w, h)`` as floats when they are finite numbers, the size is not negative
    and the box lies in the image (within the tolerance); None otherwise, so that
    ``_label_from`` words the problem."""
    if not (type(x) is float and type(y) is float and type(w) is float and type(h) is float):
        if not (type(x) in _NUM_TYPES and type(y) in _NUM_TYPES and type(w) in _NUM_TYPES
                and type(h) in _NUM_TYPES):
            return None
        try:
            x, y, w, h = float(x), float(y), float(w), float(h)
        except OverflowError:
            return None
    total = x + y + w + h
    if total - total != 0.0 or w < 0 or h < 0:
        return None
    if width is not None and height is not None and (
            x < -BBOX_TOLERANCE or y < -BBOX_TOLERANCE
            or x + w > width + BBOX_TOLERANCE or y + h > height + BBOX_TOLERANCE):
        return None
    return x, y, w, h


_PLAIN_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"})


def _parse(text: str) -> Any:
    """A COCO file's JSON, with every plain box annotation (those keys only, an integer id,
    a 4-item bbox, no segmentation) packed as a tuple ``(id, image_id, category_id, x, y,
    w, h, iscrowd)`` as it is parsed: half the memory of the dict (a million annotations:
    330 instead of 640 MB), and faster to read.

    JSON has no tuples, so a tuple in the result is always a packed annotation. A file
    where such an object shows up anywhere else than in the top-level ``annotations`` list
    is parsed again as it is (the reader only unpacks annotations).
    """
    packed = 0

    def pack(obj: dict[str, Any]) -> Any:
        nonlocal packed
        if len(obj) <= 7 and obj.keys() <= _PLAIN_KEYS:
            box, seg = obj.get("bbox"), obj.get("segmentation")
            if (type(box) is list and len(box) == 4 and type(aid := obj.get("id")) is int
                    and (seg is None or (type(seg) is list and not seg))):
                packed += 1
                return (aid, obj.get("image_id"), obj.get("category_id"),
                        box[0], box[1], box[2], box[3], obj.get("iscrowd", 0))
        return obj

    data = json.loads(text, object_hook=pack)
    if packed and not (type(data) is dict and type(anns := data.get("annotations")) is list
                       and sum(type(a) is tuple for a in anns) == packed):
        return json.loads(text)
    return data


def _unpacked(ann: tuple[Any, ...]) -> dict[str, Any]:
    """A packed annotation as the reader would have seen it (``area`` is not read)."""
    aid, iid, cid, x, y, w, h, iscrowd = ann
    return {"id": aid, "image_id": iid, "category_id": cid, "bbox": [x, y, w, h], "iscrowd": iscrowd}


def _label_from(ann: dict[str, Any], class_name: str, width: int | None,
                height: int | None) -> SourceLabel:
    """A SourceLabel from one COCO annotation (or panoptic segment); ``_Bad`` if invalid."""
    label = _plain_label(ann, class_name, width, height)
    if label is not None:
        return label
    bbox: tuple[float, float, float, float] | None = None
    raw_bbox = ann.get("bbox")
    if raw_bbox is not None and raw_bbox != []:
        if not isinstance(raw_bbox, list) or len(raw_bbox) != 4:
            raise _Bad("bbox must be [x, y, width, height]")
        x, y, w, h = _finite(raw_bbox, "bbox")
        if w < 0 or h < 0:
            raise _Bad(f"bbox has a negative size {w:g}x{h:g}")
        if width is not None and height is not None and (
                x < -BBOX_TOLERANCE or y < -BBOX_TOLERANCE
                or x + w > width + BBOX_TOLERANCE or y + h > height + BBOX_TOLERANCE):
            raise _Bad(f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] lies outside the "
                       f"{width}x{height} image")
        bbox = (x, y, w, h)

    polygon: list[list[float]] | None = None
    mask: dict[str, Any] | None = None
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        polygon = []
        for ring in seg:
            if not isinstance(ring, list):
                raise _Bad("segmentation must be a list of polygons (flat [x, y, ...] lists)")
            pts = _finite(ring, "polygon")
            if len(pts) % 2 or len(pts) < 6:
                raise _Bad(f"polygon needs an even number of coordinates and at least 3 "
                           f"points, got {len(pts)} numbers")
            polygon.append(pts)
    elif isinstance(seg, dict):
        try:
            mask = _rle.from_coco(seg)
        except _rle.BadMask as e:
            raise _Bad(str(e)) from None
        if width is not None and height is not None and mask["size"] != [height, width]:
            raise _Bad(f"RLE size {mask['size']} is not the image's [height, width] "
                       f"[{height}, {width}]")
    elif seg is not None and seg != []:
        raise _Bad("segmentation must be a list of polygons or an RLE object")

    keypoints: list[float] | None = None
    raw_kp = ann.get("keypoints")
    if raw_kp is not None and raw_kp != []:
        if not isinstance(raw_kp, list) or len(raw_kp) % 3:
            raise _Bad("keypoints must be a flat list of [x, y, v] triples")
        keypoints = _finite(raw_kp, "keypoints")
        if not _VISIBILITIES.issuperset(keypoints[2::3]):
            raise _Bad("keypoint visibility must be 0, 1 or 2")

    iscrowd = ann.get("iscrowd", 0)
    if iscrowd not in (0, 1):  # True/False compare equal to 1/0
        raise _Bad(f"iscrowd must be 0 or 1, got {iscrowd!r}")
    attributes = ann.get("attributes", {})
    if not isinstance(attributes, dict):
        raise _Bad("attributes must be an object")
    score = ann.get("score")
    if score is not None:
        score = _finite([score], "score")[0]

    if bbox is None and polygon is not None:
        bbox = polygons_bbox(polygon)
    elif bbox is None and mask is not None:
        bbox = _rle.bbox(mask)
    label = SourceLabel(kind=LabelKind.CLASSIFICATION, class_name=class_name, bbox=bbox,
                        polygon=polygon, mask=mask, keypoints=keypoints,
                        iscrowd=bool(iscrowd), attributes=dict(attributes), score=score)
    label.kind = _kind(label)
    return label


def _same_object(a: SourceLabel, b: SourceLabel) -> bool:
    if a.class_name != b.class_name:
        return False
    if a.bbox is None or b.bbox is None:
        return a.bbox is None and b.bbox is None
    return all(abs(p - q) <= 1e-6 for p, q in zip(a.bbox, b.bbox, strict=True))


def _merge(into: SourceLabel, new: SourceLabel) -> None:
    """Fold a same-object annotation from another task file into ``into``."""
    if into.polygon is None and into.mask is None:
        into.polygon, into.mask = new.polygon, new.mask
    if into.keypoints is None:
        into.keypoints = new.keypoints
    for k, v in new.attributes.items():
        into.attributes.setdefault(k, v)
    if into.score is None:
        into.score = new.score
    into.kind = _kind(into)


def _image_rec(iid: int, file_name: Any) -> str:
    return f"image id={iid}" + (f" ({file_name})" if isinstance(file_name, str) else "")


def _plain_name(name: str) -> bool:
    """A single path component that ``safe_join`` takes as it is (no separator, ``..``,
    NUL or drive letter)."""
    return bool(name) and not ("/" in name or "\\" in name or "\x00" in name
                               or name in (".", "..") or name[1:2] == ":")


# What a folder entry is (``_Folder.kind``).
_MISSING, _REG, _LINK, _OTHER, _UNKNOWN = range(5)
_LISTING_MIN = 1024
_LISTING_PER_NAME = 4
"""A folder listing reads at most this many entries per image name of the file (plus
``_LISTING_MIN``), so a huge folder named by a small file costs no more than it did."""


class _Folder:
    """A candidate image folder: its path and key prefixes, and what its listing says.

    The listing (one ``os.scandir``, perhaps cut short) is only trusted for the names it
    holds; any other name is looked up with ``os.lstat``, so case-insensitive file systems
    and partial listings answer exactly as a ``Path.is_file`` call would.
    """

    __slots__ = ("complete", "entries", "key_prefix", "limit", "links", "path", "prefix")

    def __init__(self, path: str, key_prefix: str, limit: int) -> None:
        self.path = path
        self.prefix = path if path.endswith(os.sep) else path + os.sep
        self.key_prefix = key_prefix
        self.limit = limit
        self.entries: dict[str, int] | None = None
        self.complete = False
        self.links = False

    def _load(self) -> dict[str, int]:
        entries: dict[str, int] = {}
        seen = 0
        try:
            with os.scandir(self.path) as it:
                for seen, entry in enumerate(islice(it, self.limit), 1):
                    try:
                        if entry.is_symlink():
                            entries[entry.name] = _LINK
                            self.links = True
                        else:
                            entries[entry.name] = (
                                _REG if entry.is_file(follow_symlinks=False) else _OTHER)
                    except OSError:
                        self.links = True  # unknown: assume the worst
                self.complete = seen < self.limit
        except OSError:
            pass
        self.entries = entries
        return entries

    def may_link(self) -> bool:
        """False only if the folder surely holds no symlink at all."""
        if self.entries is None:
            self._load()
        return self.links or not self.complete

    def kind(self, name: str) -> int:
        entries = self.entries if self.entries is not None else self._load()
        kind = entries.get(name)
        if kind is not None:
            return kind
        try:
            mode = os.lstat(self.prefix + name).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return _MISSING
        except (OSError, ValueError):
            return _UNKNOWN
        if stat.S_ISLNK(mode):
            return _LINK
        return _REG if stat.S_ISREG(mode) else _OTHER


@dataclass
class _Categories:
    names: dict[int, str]
    keypoint_meta: dict[int, dict[str, Any]]


class _Reader:
    """Reads the annotation files of one root into merged samples."""

    def __init__(self, root: Path, split: str | None,
                 images_found: Callable[[list[tuple[str, str]]], None] | None = None) -> None:
        self.root = root
        self.images_found = images_found
        self.override = split
        self.image_root = root / "images" if (root / "images").is_dir() else root
        self.problems: list[Problem] = []
        self.samples: dict[str, SourceSample] = {}
        self.file_split: dict[str, str | None] = {}
        self.instance_files = 0  # instance-family files read so far
        self.class_ids: dict[str, int] = {}

    def problem(self, rel: str, message: str, record: str | None = None) -> None:
        self.problems.append(Problem(rel, message, record))

    def classes(self) -> list[str]:
        return sorted(self.class_ids, key=lambda n: (self.class_ids[n], n))

    # -- one file

    def read_file(self, path: Path) -> None:
        rel = path.relative_to(self.root).as_posix()
        task, split, _ = _task_and_split(path.stem)
        packs = task not in ("panoptic", "captions")  # the files _annotations reads
        data = read_json(path, self.root, self.problems, parse=_parse if packs else json.loads)
        if data is None:
            return
        if not isinstance(data, dict):
            self.problem(rel, "not a COCO file: the top level must be an object with "
                              "images, annotations and categories")
            return
        images = data.get("images")
        if not isinstance(images, list):
            self.problem(rel, "'images' is missing or not a list")
            return
        anns = self._list(data, "annotations", rel, required=task != "image_info")
        cats = self._list(data, "categories", rel,
                          required=task not in ("image_info", "captions"))
        categories = self._categories(rel, cats)
        image_keys = self._images(rel, split, images)
        images.clear()  # the parsed image records are not needed any more
        if self.images_found is not None:
            samples = self.samples
            self.images_found([(k, samples[k].path) for k in image_keys.values() if k is not None])
        if task == "panoptic":
            self._panoptic(path, rel, anns, image_keys, categories)
        elif task == "captions":
            self._captions(rel, anns, image_keys)
        else:
            self._annotations(rel, task, anns, image_keys, categories)

    def _list(self, data: dict[str, Any], name: str, rel: str, *, required: bool) -> list[Any]:
        value = data.get(name)
        if value is None:
            if required:
                self.problem(rel, f"'{name}' is missing")
            return []
        if not isinstance(value, list):
            self.problem(rel, f"'{name}' must be a list, got {type(value).__name__}")
            return []
        return value

    def _categories(self, rel: str, cats: list[Any]) -> _Categories:
        out = _Categories({}, {})
        for i, c in enumerate(cats):
            rec = f"category #{i}"
            if not isinstance(c, dict) or not _is_int(c.get("id")):
                self.problem(rel, "category must be an object with an integer id", rec)
                continue
            cid, name = c["id"], c.get("name")
            rec = f"category id={cid}"
            if not isinstance(name, str) or not name.strip():
                self.problem(rel, "category name must be a non-empty string", rec)
                continue
            if cid in out.names:
                self.problem(rel, "duplicate category id", rec)
                continue
            out.names[cid] = name
            self.class_ids[name] = min(self.class_ids.get(name, cid), cid)
            meta: dict[str, Any] = {}
            names, skeleton = c.get("keypoints"), c.get("skeleton")
            if names:
                if isinstance(names, list) and all(isinstance(n, str) for n in names):
                    meta[KEYPOINT_NAMES_ATTR] = list(names)
                else:
                    self.problem(rel, "category keypoints must be a list of names", rec)
            if skeleton:
                if isinstance(skeleton, list) and all(
                        isinstance(e, list) and len(e) == 2 and all(_is_int(v) for v in e)
                        for e in skeleton):
                    meta[SKELETON_ATTR] = [list(e) for e in skeleton]
                else:
                    self.problem(rel, "category skeleton must be a list of [i, j] pairs", rec)
            if meta:
                out.keypoint_meta[cid] = meta
        return out

    def _resolve(self, file_name: str, split: str | None) -> Path | None:
        """The image file for ``file_name``; None if absent. Raises UnsafePath."""
        folders = [f"images/{split}", "images", split, ""] if split else ["images", ""]
        return find_image(self.root, file_name, folders)

    def _key(self, path: Path) -> str:
        return image_key(self.root, self.image_root, path)

    def _folders(self, split: str | None, count: int) -> list[_Folder] | None:
        """The candidate image folders of ``split`` for plain file names, in ``_resolve``'s
        order, leaving out those that do not exist; None when any of them (or the split
        itself) is unusual, so that ``_resolve`` handles every name of the file."""
        if split and not _plain_name(split):
            return None
        rels = [f"images/{split}", "images", split, ""] if split else ["images", ""]
        root_s = os.fspath(self.root)
        real_root = os.path.realpath(root_s)
        inside = real_root.rstrip(os.sep) + os.sep
        limit = _LISTING_MIN + _LISTING_PER_NAME * count
        folders: list[_Folder] = []
        for rel in rels:
            path = os.path.join(root_s, rel) if rel else root_s
            real = os.path.realpath(path)
            if real != real_root and not real.startswith(inside):
                return None  # safe_join refuses (some) names here: let it word the problem
            if rel and not os.path.isdir(path):
                continue
            key_prefix = self._key(Path(path, "_"))[:-1]
            folders.append(_Folder(path, key_prefix, limit))
        return folders

    def _find(self, folders: list[_Folder], check_root: bool,
              file_name: str) -> tuple[str, str] | None | bool:
        """``(path, key)`` of a plain file name's image via the folder listings, None if it
        is in none of them, False where ``_resolve`` must decide (unusual name, symlink,
        error). Same answer as ``_resolve`` whenever it is not False."""
        if not _plain_name(file_name):
            return False
        if check_root:  # safe_join(root, file_name) follows a symlink named so at the root
            kind = folders[-1].kind(file_name)
            if kind == _LINK or kind == _UNKNOWN:
                return False
        for folder in folders:
            kind = folder.kind(file_name)
            if kind == _REG:
                return folder.prefix + file_name, folder.key_prefix + file_name
            if kind == _LINK or kind == _UNKNOWN:
                return False
        return None

    def _images(self, rel: str, split: str | None, images: list[Any]) -> dict[int, str | None]:
        """Image id → sample key (None: the image was left out with a Problem)."""
        keys: dict[int, str | None] = {}
        samples, file_split, override = self.samples, self.file_split, self.override
        sample_split = override if override is not None else split
        folders = self._folders(split, len(images))
        check_root = folders is not None and folders[-1].may_link()
        for i, im in enumerate(images):
            if type(im) is dict and type(iid := im.get("id")) is int:
                pass
            elif not isinstance(im, dict) or not _is_int(im.get("id")):
                self.problem(rel, "image must be an object with an integer id", f"image #{i}")
                continue
            else:
                iid = im["id"]
            file_name = im.get("file_name")
            if iid in keys:
                self.problem(rel, "duplicate image id", _image_rec(iid, file_name))
                continue
            keys[iid] = None
            if not isinstance(file_name, str) or not file_name:
                self.problem(rel, "file_name must be a non-empty string",
                             _image_rec(iid, file_name))
                continue
            try:
                width, height = _size_value(im.get("width")), _size_value(im.get("height"))
            except _Bad as e:
                self.problem(rel, str(e), _image_rec(iid, file_name))
                continue
            found = self._find(folders, check_root, file_name) if folders is not None else False
            if found is False:
                try:
                    resolved = self._resolve(file_name, split)
                except UnsafePath as e:
                    self.problem(rel, str(e), _image_rec(iid, file_name))
                    continue
                found = None if resolved is None else (str(resolved), self._key(resolved))
            if found is None:
                self.problem(rel, "image file not found; the image and its annotations "
                                  "are left out", _image_rec(iid, file_name))
                continue
            path, key = found
            sample = samples.get(key)
            if sample is None:
                samples[key] = SourceSample(key=key, path=path, width=width, height=height,
                                            split=sample_split)
                file_split[key] = split
            else:
                if override is None and file_split[key] != split:
                    self.problem(rel, f"image {key} is already in split "
                                      f"{file_split[key]!r}", _image_rec(iid, file_name))
                    continue
                if ((width is not None and sample.width is not None and width != sample.width)
                        or (height is not None and sample.height is not None
                            and height != sample.height)):
                    self.problem(rel, f"size {width}x{height} differs from "
                                      f"{sample.width}x{sample.height} in another file",
                                 _image_rec(iid, file_name))
                    continue
                sample.width = sample.width if sample.width is not None else width
                sample.height = sample.height if sample.height is not None else height
            keys[iid] = key
        return keys

    def _annotation_head(self, rel: str, i: int, ann: Any, seen: set[int],
                         image_keys: dict[int, str | None]) -> tuple[int, str | None] | None:
        """Checks shared by every annotation: ``(id, key)``, or None after a Problem."""
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            self.problem(rel, "annotation must be an object with an integer id",
                         f"annotation #{i}")
            return None
        aid = ann["id"]
        rec = f"annotation id={aid}"
        if aid in seen:
            self.problem(rel, "duplicate annotation id", rec)
            return None
        seen.add(aid)
        iid = ann.get("image_id")
        if not _is_int(iid) or iid not in image_keys:
            self.problem(rel, f"unknown image_id {iid!r}", rec)
            return None
        return aid, image_keys[iid]

    def _annotations(self, rel: str, task: str, anns: list[Any],
                     image_keys: dict[int, str | None], categories: _Categories) -> None:
        seen: set[int] = set()
        names, samples = categories.names, self.samples
        instance = task in _INSTANCE_FAMILY
        earlier = self._earlier_instances(image_keys) if instance else {}
        self.instance_files += instance
        for i, ann in enumerate(anns):
            anns[i] = None  # each parsed annotation is freed once read: a file of a million
            # annotations never holds them all next to the labels made of them
            if type(ann) is tuple:  # a plain box, packed by _parse: the checks of the
                # dict path below, in its order; any failing one sends it there to be worded
                aid, iid, cid, x, y, w, h, iscrowd = ann
                if aid not in seen and type(iid) is int and iid in image_keys:
                    key = image_keys[iid]
                    if key is None:
                        seen.add(aid)
                        continue
                    sample = samples[key]
                    bbox = (_checked_box(x, y, w, h, sample.width, sample.height)
                            if type(cid) is int and cid in names and (iscrowd == 0 or iscrowd == 1)
                            else None)
                    if bbox is not None:
                        seen.add(aid)
                        label = SourceLabel(kind=_BOX, class_name=names[cid], bbox=bbox, iscrowd=bool(iscrowd))
                        self._place(sample, task, aid, label, earlier)
                        continue
                ann = _unpacked(ann)
            # The checks of _annotation_head, cheaply for the common case; it rechecks (and
            # words the problem) when any of them fails.
            if (type(ann) is dict and type(aid := ann.get("id")) is int and aid not in seen
                    and type(iid := ann.get("image_id")) is int and iid in image_keys):
                seen.add(aid)
                key = image_keys[iid]
            else:
                head = self._annotation_head(rel, i, ann, seen, image_keys)
                if head is None:
                    continue
                aid, key = head
            if key is None:
                continue
            cid = ann.get("category_id")
            if (type(cid) is not int or cid not in names) and (
                    not _is_int(cid) or cid not in names):
                self.problem(rel, f"unknown category_id {cid!r}", f"annotation id={aid}")
                continue
            sample = samples[key]
            try:
                label = _label_from(ann, names[cid], sample.width, sample.height)
            except _Bad as e:
                self.problem(rel, str(e), f"annotation id={aid}")
                continue
            if label.keypoints is not None:
                for k, v in categories.keypoint_meta.get(cid, {}).items():
                    label.attributes[k] = [list(e) if isinstance(e, list) else e for e in v]
            self._place(sample, task, aid, label, earlier)

    @staticmethod
    def _place(sample: SourceSample, task: str, aid: int, label: SourceLabel,
               earlier: dict[tuple[str, int], SourceLabel]) -> None:
        """Add ``label`` to ``sample``, or merge it into the same object from an earlier
        instance-family file (see the module docstring for ids)."""
        if task in _INSTANCE_FAMILY:
            prev = earlier.get((sample.key, aid)) if earlier else None
            if prev is None:
                label.source_id = str(aid)
                sample.labels.append(label)
                return
            if _same_object(prev, label):
                _merge(prev, label)
                return
        label.source_id = f"{task}:{aid}"
        sample.labels.append(label)

    def _earlier_instances(self, image_keys: dict[int, str | None]) -> dict[tuple[str, int], SourceLabel]:
        """``(key, id)`` → label, for the labels that earlier instance-family files gave
        this file's images under their own annotation id (``source_id == str(id)``).

        Built per file, and only when an earlier file can have such labels: an index of
        every label read would cost about 150 bytes per label for the whole read.
        """
        if not self.instance_files:
            return {}
        index: dict[tuple[str, int], SourceLabel] = {}
        samples = self.samples
        for key in set(image_keys.values()):
            if key is None:
                continue
            for label in samples[key].labels:
                sid = label.source_id
                if sid is not None and _PLAIN_ID.fullmatch(sid):
                    index.setdefault((key, int(sid)), label)
        return index

    def _captions(self, rel: str, anns: list[Any], image_keys: dict[int, str | None]) -> None:
        seen: set[int] = set()
        for i, ann in enumerate(anns):
            head = self._annotation_head(rel, i, ann, seen, image_keys)
            if head is None or head[1] is None:
                continue
            caption = ann.get("caption")
            if not isinstance(caption, str):
                self.problem(rel, "caption must be a string", f"annotation id={head[0]}")
                continue
            self.samples[head[1]].metadata.setdefault("captions", []).append(caption)

    def _panoptic(self, path: Path, rel: str, anns: list[Any],
                  image_keys: dict[int, str | None], categories: _Categories) -> None:
        seg_dir = path.parent / path.stem
        for i, ann in enumerate(anns):
            if not isinstance(ann, dict):
                self.problem(rel, "annotation must be an object", f"annotation #{i}")
                continue
            iid, file_name = ann.get("image_id"), ann.get("file_name")
            rec = f"annotation image_id={iid}" + (
                f" ({file_name})" if isinstance(file_name, str) else "")
            if not _is_int(iid) or iid not in image_keys:
                self.problem(rel, f"unknown image_id {iid!r}", rec)
                continue
            key = image_keys[iid]
            if key is None:
                continue
            segments = ann.get("segments_info")
            if not isinstance(segments, list) or not isinstance(file_name, str):
                self.problem(rel, "panoptic annotation needs file_name and a segments_info "
                                  "list", rec)
                continue
            sample = self.samples[key]
            ids = self._segment_map(seg_dir, file_name, rel, rec, sample)
            if ids is None:
                continue
            seen: set[int] = set()
            for j, seg in enumerate(segments):
                if not isinstance(seg, dict) or not _is_int(seg.get("id")):
                    self.problem(rel, "segment must be an object with an integer id",
                                 f"{rec} segment #{j}")
                    continue
                sid, cid = seg["id"], seg.get("category_id")
                srec = f"{rec} segment id={sid}"
                if sid in seen:
                    self.problem(rel, "duplicate segment id", srec)
                    continue
                seen.add(sid)
                if not _is_int(cid) or cid not in categories.names:
                    self.problem(rel, f"unknown category_id {cid!r}", srec)
                    continue
                pixels = ids == sid
                if not pixels.any():
                    self.problem(rel, "segment id does not occur in the segment map", srec)
                    continue
                fields = {k: seg[k] for k in ("bbox", "iscrowd", "attributes", "score")
                          if k in seg}
                try:
                    label = _label_from(fields, categories.names[cid], sample.width,
                                        sample.height)
                except _Bad as e:
                    self.problem(rel, str(e), srec)
                    continue
                label.mask = _rle.encode(pixels)
                label.bbox = label.bbox if label.bbox is not None else _rle.bbox(label.mask)
                label.kind = LabelKind.MASK
                label.source_id = f"panoptic:{sid}"
                sample.labels.append(label)

    def _segment_map(self, seg_dir: Path, file_name: str, rel: str, rec: str,
                     sample: SourceSample) -> Any:
        """The segment-id array of a panoptic PNG, or None after a Problem."""
        import numpy as np
        from PIL import Image

        try:
            png = safe_join(seg_dir, file_name)
        except UnsafePath as e:
            self.problem(rel, str(e), rec)
            return None
        png_rel = png.relative_to(self.root).as_posix()
        if not png.is_file():
            self.problem(rel, f"segment map {png_rel} not found", rec)
            return None
        try:
            with Image.open(png) as im:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint32)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            self.problem(png_rel, f"cannot read segment map: {e}", rec)
            return None
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        if (sample.width is not None and sample.height is not None
                and ids.shape != (sample.height, sample.width)):
            self.problem(rel, f"segment map is {ids.shape[1]}x{ids.shape[0]}, the image is "
                              f"{sample.width}x{sample.height}", rec)
            return None
        return ids


def _file_order(path: Path) -> tuple[int, str, str]:
    task, split, _ = _task_and_split(path.stem)
    return _TASK_ORDER.index(task), split or "", path.name


def read(root: Path, *, split: str | None = None,
         images_found: Callable[[list[tuple[str, str]]], None] | None = None) -> SourceDataset:
    """Import a COCO folder (see the module docstring for the layout).

    Args:
        root: the dataset folder.
        split: if given, every sample gets this split instead of the file name's.
        images_found: called with ``(key, path)`` of each file's images as soon as they
            are found, before its annotations are read (an import starts reading images
            while the annotations are parsed).

    Raises:
        InvalidInput: ``root`` is not a folder. Every other problem is reported in
        ``SourceDataset.problems`` and the bad record is left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder", path=str(root))
    root = root.absolute()
    reader = _Reader(root, split, images_found)
    files = _annotation_files(root)
    if not files:
        reader.problem(".", "no COCO annotation files (annotations/*.json or *.json)")
    with gc_paused():
        for path in sorted(files, key=_file_order):
            reader.read_file(path)
    samples = [reader.samples[k] for k in sorted(reader.samples)]
    return SourceDataset(samples=samples, classes=reader.classes(), problems=reader.problems,
                         format=FORMAT)


# --------------------------------------------------------------------------- write


_DIGITS = re.compile(r"[0-9]+")


def _split_suffix(split: str | None) -> str:
    if split is None:
        return "default"
    if not split or split in (".", "..") or any(c in split for c in "/\\\x00"):
        raise InvalidInput(f"split {split!r} cannot be used in a file name")
    return split


def _file_name(key: str, split: str | None) -> str:
    prefix = f"{split}/" if split else ""
    return key[len(prefix):] if prefix and key.startswith(prefix) else key


def _wanted_id(source_id: str | None, prefix: str | None) -> int | None:
    sid = source_id or ""
    if prefix and sid.startswith(prefix + ":"):
        sid = sid[len(prefix) + 1:]
    if _DIGITS.fullmatch(sid) and int(sid) > 0:
        return int(sid)
    return None


def _assign_ids(labels: list[SourceLabel], prefix: str | None) -> list[int]:
    """Keep each label's numeric source id when it is free, else number after the max."""
    wanted = [_wanted_id(label.source_id, prefix) for label in labels]
    used: set[int] = set()
    ids: list[int | None] = []
    for w in wanted:
        if w is not None and w not in used:
            used.add(w)
            ids.append(w)
        else:
            ids.append(None)
    nxt = max(used, default=0) + 1
    out: list[int] = []
    for i in ids:
        if i is None:
            i, nxt = nxt, nxt + 1
        out.append(i)
    return out


def _mask_for_export(mask: dict[str, Any]) -> dict[str, Any]:
    counts = mask["counts"]
    if isinstance(counts, bytes):
        return {"size": list(mask["size"]), "counts": counts.decode("ascii")}
    if isinstance(counts, str):
        return {"size": list(mask["size"]), "counts": counts}
    return _rle.from_coco(mask)


def _keypoints_bbox(kp: list[float]) -> tuple[float, float, float, float]:
    pts = [(kp[i], kp[i + 1]) for i in range(0, len(kp), 3) if kp[i + 2] > 0]
    if not pts:
        return (0.0, 0.0, 0.0, 0.0)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def _instance_annotation(aid: int, image_id: int, category_id: int,
                         label: SourceLabel) -> dict[str, Any]:
    ann: dict[str, Any] = {"id": aid, "image_id": image_id, "category_id": category_id,
                           "iscrowd": int(bool(label.iscrowd))}
    mask = _mask_for_export(label.mask) if label.mask else None
    bbox = label.bbox
    if label.polygon:
        ann["segmentation"] = [[float(v) for v in ring] for ring in label.polygon]
        area = sum(polygon_area(ring) for ring in label.polygon)
        bbox = bbox if bbox is not None else polygons_bbox(label.polygon)
    elif mask is not None:
        ann["segmentation"] = mask
        area = float(_rle.area(mask))
        bbox = bbox if bbox is not None else _rle.bbox(mask)
    else:
        ann["segmentation"] = []
        area = None
    if bbox is None:
        bbox = _keypoints_bbox(label.keypoints) if label.keypoints else (0.0, 0.0, 0.0, 0.0)
    ann["bbox"] = [float(v) for v in bbox]
    ann["area"] = area if area is not None else float(bbox[2]) * float(bbox[3])
    if label.keypoints:
        kp: list[float | int] = [
            int(v) if i % 3 == 2 else float(v) for i, v in enumerate(label.keypoints)]
        ann["keypoints"] = kp
        ann["num_keypoints"] = sum(1 for v in kp[2::3] if v > 0)
    _common_fields(ann, label)
    return ann


def _common_fields(ann: dict[str, Any], label: SourceLabel) -> None:
    attributes = {k: v for k, v in label.attributes.items() if k not in _RESERVED_ATTRS}
    if attributes:
        ann["attributes"] = attributes
    if label.score is not None:
        ann["score"] = float(label.score)


def _categories(classes: list[str], groups: list[list[ExportItem]]) -> list[dict[str, Any]]:
    meta: dict[str, dict[str, Any]] = {}
    for group in groups:
        for item in group:
            for label in item.sample.labels:
                if label.keypoints and label.class_name not in meta and any(
                        k in label.attributes for k in _RESERVED_ATTRS):
                    meta[label.class_name] = {
                        "keypoints": list(label.attributes.get(KEYPOINT_NAMES_ATTR) or []),
                        "skeleton": [list(e) for e in label.attributes.get(SKELETON_ATTR) or []],
                    }
    return [{"id": i, "name": name, "supercategory": "", **meta.get(name, {})}
            for i, name in enumerate(classes, 1)]


def _coco_file(images: list[dict[str, Any]], annotations: list[dict[str, Any]],
               categories: list[dict[str, Any]]) -> bytes:
    return dump_json({"info": {"description": "Exported by Viewfinder"}, "licenses": [],
                      "categories": categories, "images": images, "annotations": annotations})


def write(out: Path, items: Sequence[ExportItem], classes: list[str], images: ImageWriter) -> None:
    """Export samples as COCO (see the module docstring). Deterministic.

    Raises:
        InvalidInput: a label's class is not in ``classes``, a key or split cannot be a
            path, or two samples would get the same file name in one split.
    """
    out = Path(out)
    class_ids: dict[str, int] = {}
    for i, name in enumerate(classes, 1):
        if name in class_ids:
            raise InvalidInput(f"class {name!r} appears twice in the class list")
        class_ids[name] = i
    by_split: dict[str | None, list[ExportItem]] = {}
    for item in items:
        by_split.setdefault(item.sample.split, []).append(item)
    order = sorted(by_split, key=lambda s: (s is not None, s or ""))
    groups = [sorted(by_split[s], key=lambda it: it.sample.key) for s in order]
    if not groups:
        order, groups = [None], [[]]
    suffixes = [_split_suffix(s) for s in order]
    if len(set(suffixes)) != len(suffixes):
        raise InvalidInput("a split named 'default' cannot be exported beside samples "
                           "without a split")
    all_keys = {item.sample.key for item in items}
    if len(all_keys) != len(items):
        raise InvalidInput("two samples have the same key")
    categories = _categories(classes, groups)

    ann_dir, image_dir = out / "annotations", out / "images"
    ann_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    for split, suffix, group in zip(order, suffixes, groups, strict=True):
        image_entries: list[dict[str, Any]] = []
        instance_refs: list[tuple[int, int, SourceLabel]] = []
        class_refs: list[tuple[int, int, SourceLabel]] = []
        captions: list[tuple[int, str]] = []
        for image_id, item in enumerate(group, 1):
            sample = item.sample
            if split and not sample.key.startswith(f"{split}/") and f"{split}/{sample.key}" in all_keys:
                raise InvalidInput(f"sample {sample.key!r} in split {split!r} would be read "
                                   f"back as {split}/{sample.key!r}", record=sample.key)
            try:  # lexical: the export folder is new, only this exporter writes it
                dest = image_dir / export_relpath(sample.key)
            except UnsafePath as e:
                raise InvalidInput(str(e), record=sample.key) from None
            images.place(item.content_hash, dest)
            entry: dict[str, Any] = {"id": image_id, "file_name": _file_name(sample.key, split)}
            if sample.width is not None and sample.height is not None:
                entry["width"], entry["height"] = int(sample.width), int(sample.height)
            image_entries.append(entry)
            for label in sample.labels:
                if label.class_name not in class_ids:
                    raise InvalidInput(f"label class {label.class_name!r} is not in the class "
                                       f"list", record=sample.key)
                ref = (image_id, class_ids[label.class_name], label)
                is_class = LabelKind(label.kind) is LabelKind.CLASSIFICATION
                (class_refs if is_class else instance_refs).append(ref)
            for caption in sample.metadata.get("captions") or []:
                captions.append((image_id, str(caption)))

        ids = _assign_ids([r[2] for r in instance_refs], None)
        anns = [_instance_annotation(aid, img, cat, label)
                for aid, (img, cat, label) in zip(ids, instance_refs, strict=True)]
        (ann_dir / f"instances_{suffix}.json").write_bytes(
            _coco_file(image_entries, anns, categories))

        if class_refs:
            ids = _assign_ids([r[2] for r in class_refs], "labels")
            anns = []
            for aid, (img, cat, label) in zip(ids, class_refs, strict=True):
                ann = {"id": aid, "image_id": img, "category_id": cat}
                _common_fields(ann, label)
                anns.append(ann)
            used = {r[0] for r in class_refs}
            (ann_dir / f"labels_{suffix}.json").write_bytes(
                _coco_file([e for e in image_entries if e["id"] in used], anns, categories))

        if captions:
            used = {c[0] for c in captions}
            anns = [{"id": n, "image_id": img, "caption": text}
                    for n, (img, text) in enumerate(captions, 1)]
            (ann_dir / f"captions_{suffix}.json").write_bytes(
                _coco_file([e for e in image_entries if e["id"] in used], anns, []))
