"""Import model predictions into a dataset version.

Predictions are labels whose ``source`` is a model run (``"model:<name>"``) and that carry a
``score``. They live beside the ground truth in the same labels table, so a detector can
compare the two, while statistics and exports keep to the ground truth.

Two formats:

- ``coco-results``: the COCO results JSON that detectors write
  (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``). Image and category
  ids are resolved through the COCO annotation file the model was run on (``annotations``:
  its ``images`` give each id's ``file_name``, its ``categories`` each id's name). Without
  that file, a record may name its image by sample key (``"image_id": "a/b.jpg"`` or
  ``"file_name"``) and its class by ``"category_name"``.
- ``classification-csv``: one row per image, a key column (``key``, ``file_name``,
  ``file``, ``image`` or ``path``) and either ``class`` + ``score`` columns (one top-1
  prediction) or one probability column per class of the dataset (the full predicted
  distribution, kept in the label's ``attributes["probs"]``; the label's class is the
  most probable one).

Importing predictions of a model again replaces that model's earlier predictions; an
identical file creates no version. Every problem (unknown image, unknown class, bad box,
score outside [0, 1]) is reported with the file and record, and by default none of the
file is imported (``on_error="skip"`` imports the good records).

Example:
    >>> import_predictions(ws, "street@main", "results.json", model="yolo-v1",
    ...                    annotations="instances_val.json")         # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from viewfinder.errors import ImportFailed, InvalidInput, Problem
from viewfinder.services import versions as vs
from viewfinder.storage import duck, rows
from viewfinder.storage.catalog import VersionRecord
from viewfinder.storage.tables import DatasetTables, TableChange
from viewfinder.storage.workspace import Workspace

PredictionFormat = Literal["coco-results", "classification-csv"]
FORMATS: tuple[str, ...] = ("coco-results", "classification-csv")
MODEL_PREFIX = "model:"
KEY_COLUMNS = ("key", "file_name", "file", "image", "path")
PROB_SUM_TOLERANCE = 0.01
MAX_JSON_BYTES = 2 << 30


def model_source(model: str) -> str:
    """The label ``source`` of a model's predictions: ``"model:<name>"``."""
    return MODEL_PREFIX + vs.check_name("model", model)


@dataclass
class PredictionsResult:
    dataset: str
    model: str
    format: str
    version: VersionRecord
    created: bool
    predictions: int
    changes: dict[str, Any]
    skipped: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "model": self.model, "format": self.format,
                "version": self.version.id, "created": self.created,
                "predictions": self.predictions, "changes": self.changes,
                "skipped": [p.to_dict() for p in self.skipped], "seconds": round(self.seconds, 3)}


@dataclass
class _Sample:
    id: str
    key: str
    width: int
    height: int


class _Samples:
    """The version's samples, found by key or by a trailing part of their key (the file
    name, ``split/file name``...) when that part names one sample only."""

    def __init__(self, table: pa.Table) -> None:
        self.by_key = {r["key"]: _Sample(r["id"], r["key"], r["width"] or 0, r["height"] or 0)
                       for r in table.to_pylist()}
        self.by_suffix: dict[str, list[_Sample]] = {}
        for s in self.by_key.values():
            parts = s.key.split("/")
            for i in range(1, len(parts)):
                self.by_suffix.setdefault("/".join(parts[i:]), []).append(s)
        self._found: dict[str, _Sample | str] = {}

    def find(self, name: str) -> _Sample | str:
        """The sample named ``name``, or why there is none (remembered per name: a results
        file names each image many times)."""
        if name not in self._found:
            self._found[name] = self._find(name)
        return self._found[name]

    def _find(self, name: str) -> _Sample | str:
        norm = name.replace("\\", "/").removeprefix("./")
        if norm in self.by_key:
            return self.by_key[norm]
        hits = self.by_suffix.get(norm) or self.by_suffix.get(norm.rsplit("/", 1)[-1], [])
        if len(hits) > 1:
            return f"image {name!r} matches several samples"
        if hits:
            return hits[0]
        return f"unknown image {name!r}: no sample of this version has that key or file name"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _check_score(v: Any) -> float | str:
    s = _number(v)
    if s is None:
        return f"score must be a number, not {v!r}"
    if not 0.0 <= s <= 1.0:
        return f"score {s:g} is outside [0, 1]"
    return s


def _load_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise InvalidInput(f"{path}: larger than {MAX_JSON_BYTES >> 30} GiB", path=str(path))
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InvalidInput(f"cannot read {path}: {e}", path=str(path)) from None


def _coco_lookup(path: Path) -> tuple[dict[int, str], dict[int, str]]:
    """Image id → file name and category id → name, from a COCO annotation file."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a COCO annotation file is a JSON object", path=str(path))
    images: dict[int, str] = {}
    for i, im in enumerate(data.get("images") or []):
        if isinstance(im, dict) and isinstance(im.get("id"), int) and isinstance(im.get("file_name"), str):
            images[im["id"]] = im["file_name"]
        else:
            raise InvalidInput(f"{path}: image #{i} needs an integer id and a file_name",
                               path=str(path), record=f"image #{i}")
    cats: dict[int, str] = {}
    for i, c in enumerate(data.get("categories") or []):
        if isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str):
            cats[c["id"]] = c["name"]
        else:
            raise InvalidInput(f"{path}: category #{i} needs an integer id and a name",
                               path=str(path), record=f"category #{i}")
    return images, cats


def _read_coco_results(path: Path, samples: _Samples, classes: set[str],
                       annotations: Path | None, source: str,
                       problems: list[Problem]) -> dict[str, list[dict[str, Any]]]:
    data = _load_json(path)
    if not isinstance(data, list):
        raise InvalidInput(f"{path}: COCO results are a JSON list of detections", path=str(path))
    images, cats = _coco_lookup(annotations) if annotations is not None else ({}, {})
    rel = str(path)
    out: dict[str, list[dict[str, Any]]] = {}
    for i, rec in enumerate(data):
        where = f"detection #{i}"
        if not isinstance(rec, dict):
            problems.append(Problem(rel, "a detection must be an object", where))
            continue
        iid, cid = rec.get("image_id"), rec.get("category_id")
        where = f"detection #{i} (image_id={iid!r}, category_id={cid!r})"
        # the image
        if isinstance(iid, int) and not isinstance(iid, bool) and iid in images:
            found = samples.find(images[iid])
        elif isinstance(rec.get("file_name"), str):
            found = samples.find(rec["file_name"])
        elif isinstance(iid, str):
            found = samples.find(iid)
        elif annotations is None:
            found = (f"image_id {iid!r} needs the COCO annotation file the model was run on "
                     "(its images give each id a file name)")
        else:
            found = f"unknown image_id {iid!r}: not in {annotations.name}"
        if isinstance(found, str):
            problems.append(Problem(rel, found, where))
            continue
        # the class
        if isinstance(rec.get("category_name"), str):
            cls: str | None = rec["category_name"]
        elif isinstance(cid, int) and not isinstance(cid, bool) and cid in cats:
            cls = cats[cid]
        else:
            problems.append(Problem(rel, f"unknown category_id {cid!r}" + (
                "" if annotations is not None else
                ": give the COCO annotation file that defines the categories"), where))
            continue
        if cls not in classes:
            problems.append(Problem(rel, f"unknown class {cls!r}: not a class of the dataset", where))
            continue
        # the box and the score
        bbox = rec.get("bbox")
        vals = [_number(v) for v in bbox] if isinstance(bbox, list) else []
        if len(vals) != 4 or any(v is None for v in vals):
            problems.append(Problem(rel, f"bbox must be four finite numbers [x, y, w, h], not {bbox!r}", where))
            continue
        x, y, w, h = (float(v) for v in vals if v is not None)
        if w <= 0 or h <= 0:
            problems.append(Problem(rel, f"bbox has no area ({w:g}x{h:g})", where))
            continue
        x0, y0 = max(x, 0.0), max(y, 0.0)
        x1, y1 = min(x + w, float(found.width)), min(y + h, float(found.height))
        if x1 <= x0 or y1 <= y0:
            problems.append(Problem(rel, f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] lies outside the "
                                         f"{found.width}x{found.height} image {found.key}", where))
            continue
        score = _check_score(rec.get("score"))
        if isinstance(score, str):
            problems.append(Problem(rel, score, where))
            continue
        # boxes sticking out of the image (common in detector output) are clipped to it
        out.setdefault(found.id, []).append({
            "kind": "box", "class_name": cls, "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0,
            "area": (x1 - x0) * (y1 - y0), "attributes": "{}", "score": score, "source": source})
    return out


def _read_classification_csv(path: Path, samples: _Samples, classes: list[str], source: str,
                             problems: list[Problem]) -> dict[str, list[dict[str, Any]]]:
    rel = str(path)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = list(reader.fieldnames or [])
            key_col = next((c for c in KEY_COLUMNS if c in cols), None)
            if key_col is None:
                raise InvalidInput(f"{path}: the CSV needs a key column (one of "
                                   f"{', '.join(KEY_COLUMNS)})", path=rel)
            rest = [c for c in cols if c != key_col]
            top1 = set(rest) == {"class", "score"}
            if not top1:
                unknown = [c for c in rest if c not in classes]
                if unknown or len(rest) < 2:
                    raise InvalidInput(
                        f"{path}: expected the columns {key_col},class,score or one probability "
                        f"column per class; unknown class column(s): {', '.join(unknown) or 'none'}"
                        f" (classes: {', '.join(classes)})", path=rel)
            for line, row in enumerate(reader, start=2):
                where = f"line {line}"
                found = samples.find(row.get(key_col) or "")
                if isinstance(found, str):
                    problems.append(Problem(rel, found, where))
                    continue
                if top1:
                    cls = row.get("class") or ""
                    if cls not in classes:
                        problems.append(Problem(rel, f"unknown class {cls!r}: not a class of the dataset", where))
                        continue
                    score = _check_score(_parse_float(row.get("score")))
                    if isinstance(score, str):
                        problems.append(Problem(rel, score, where))
                        continue
                    attributes = "{}"
                else:
                    probs: dict[str, float] = {}
                    bad = None
                    for c in rest:
                        p = _check_score(_parse_float(row.get(c)))
                        if isinstance(p, str):
                            bad = f"class {c!r}: {p.replace('score', 'probability')}"
                            break
                        probs[c] = p
                    total = sum(probs.values())
                    if bad is None and abs(total - 1.0) > PROB_SUM_TOLERANCE:
                        bad = f"probabilities add up to {total:g}, not 1"
                    if bad is not None:
                        problems.append(Problem(rel, bad, where))
                        continue
                    cls, score = max(probs.items(), key=lambda kv: (kv[1], -rest.index(kv[0])))
                    attributes = rows.canonical_json({"probs": probs})
                if found.id in out:
                    problems.append(Problem(rel, f"image {found.key} has a second row", where))
                    continue
                out[found.id] = [{"kind": "classification", "class_name": cls, "x": None, "y": None,
                                  "w": None, "h": None, "area": None, "attributes": attributes,
                                  "score": score, "source": source}]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InvalidInput(f"cannot read {path}: {e}", path=rel) from None
    return out


def _parse_float(v: str | None) -> Any:
    try:
        return float(v) if v not in (None, "") else v
    except ValueError:
        return v


def _rows(by_sample: dict[str, list[dict[str, Any]]]) -> pa.Table:
    """Label rows with stable ids: (sample, source, position in the file's order)."""
    out = []
    for sid in sorted(by_sample):
        for n, r in enumerate(by_sample[sid]):
            out.append({"id": rows.short_hash("label", sid, r["source"], "prediction", str(n)),
                        "sample_id": sid, "iscrowd": False, "polygon": None, "mask": None,
                        "keypoints": None, "source_id": None, **r})
    return rows.labels_table(out)


def import_predictions(ws: Workspace, spec: str, source_file: str | Path, *,
                       model: str, format: PredictionFormat = "coco-results",
                       annotations: str | Path | None = None,
                       on_error: Literal["fail", "skip"] = "fail", message: str | None = None,
                       author: str | None = None) -> PredictionsResult:
    """Commit a model's predictions to the branch ``spec`` names, as one new version.

    Args:
        ws: the open workspace.
        spec: ``NAME`` or ``NAME@BRANCH``.
        source_file: the predictions file (see the module docstring for the formats).
        model: the model run's name; the labels get ``source = "model:<model>"``.
        format: ``"coco-results"`` or ``"classification-csv"``.
        annotations: for ``coco-results``, the COCO annotation file that defines the image
            and category ids.
        on_error: ``"fail"`` (nothing is imported when any record is bad) or ``"skip"``.
        message: the version message.
        author: who commits (default: the current user).

    Raises:
        ImportFailed: records are bad (each problem names the file and record).
        InvalidInput: the file cannot be read or has the wrong shape.
    """
    t0 = time.perf_counter()
    if format not in FORMATS:
        raise InvalidInput(f"unknown predictions format {format!r}; formats: {', '.join(FORMATS)}")
    if on_error not in ("fail", "skip"):
        raise InvalidInput(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    source = model_source(model)
    path = Path(source_file)
    if not path.is_file():
        raise InvalidInput(f"predictions file {path} does not exist", path=str(path))
    ann = Path(annotations) if annotations is not None else None
    if ann is not None and format != "coco-results":
        raise InvalidInput("an annotation file is only read with the coco-results format")
    if ann is not None and not ann.is_file():
        raise InvalidInput(f"COCO annotation file {ann} does not exist", path=str(ann))
    at = vs.resolve(ws, spec)
    branch = vs.branch_of(ws, at)
    tables = ws.tables(at.dataset)
    samples = _Samples(tables.read("samples", at.version.samples_table_version,
                                   columns=["id", "key", "width", "height"]))
    classes = list(at.version.summary.get("class_list") or at.dataset.classes)
    problems: list[Problem] = []
    if format == "coco-results":
        by_sample = _read_coco_results(path, samples, set(classes), ann, source, problems)
    else:
        by_sample = _read_classification_csv(path, samples, classes, source, problems)
    if problems and on_error == "fail":
        raise ImportFailed(problems, dataset=at.dataset.name)
    new = _rows(by_sample)

    def build(head: VersionRecord, tables: DatasetTables) -> vs.Changes:
        con = duck.connect(l=tables.open("labels", head.labels_table_version),
                           s=tables.open("samples", head.samples_table_version), n=new)
        old = {r["id"]: r["row_hash"] for r in duck.query(
            con, "SELECT id, row_hash FROM l WHERE source = ?", [source]).to_pylist()}
        present = set(duck.query(con, "SELECT n.sample_id FROM n SEMI JOIN s ON n.sample_id = s.id")
                      .column("sample_id").to_pylist())
        con.close()
        changes = vs.Changes()
        counts = changes.counts["labels"]
        mask = []
        for i, sid, h in zip(new.column("id").to_pylist(), new.column("sample_id").to_pylist(),
                             new.column("row_hash").to_pylist(), strict=True):
            keep = sid in present  # a sample removed meanwhile takes no predictions
            mask.append(keep and old.get(i) != h)
            if keep and i not in old:
                counts["added"] += 1
            elif keep and old[i] != h:
                counts["changed"] += 1
        kept = {i for i, sid in zip(new.column("id").to_pylist(),
                                    new.column("sample_id").to_pylist(), strict=True) if sid in present}
        removed = sorted(i for i in old if i not in kept)
        counts["removed"] = len(removed)
        changes.labels = TableChange(
            upserts=new.filter(pa.array(mask, pa.bool_())) if any(mask) else None,
            deletes=vs.id_array(removed) if removed else None)
        return changes

    extra: dict[str, Any] = {"predictions": {"model": model, "format": format, "file": str(path.resolve())}}
    if problems:
        extra["skipped"] = [p.to_dict() for p in problems]
    result = vs.commit(ws, at.dataset, branch, build, author=author, extra=extra,
                       operation="import-predictions",
                       params={"file": str(path.resolve()), "format": format, "model": model,
                               "annotations": str(ann.resolve()) if ann else None,
                               "on_error": on_error},
                       message=message or f"import predictions of {model} from {path.name}")
    return PredictionsResult(
        dataset=at.dataset.name, model=model, format=format, version=result.version,
        created=result.created, predictions=new.num_rows,
        changes=result.version.changes if result.created else vs.empty_changes(),
        skipped=problems, seconds=time.perf_counter() - t0)
