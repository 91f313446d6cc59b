"""Scan a version with detectors and keep what they find; list the findings.

``scan`` runs detectors (duplicates, image problems, outliers, overlapping annotations,
label errors: see ``quality.detectors``) on one version through a shared
:class:`~viewfinder.quality.context.QualityContext` (image statistics and embeddings are
computed once for all of them), stores their findings with the version
(``storage.findings``: a rescan replaces the findings of the detectors it ran, nothing
else) and records a Run. Findings are then listed with :func:`findings` and reachable in
every filter as ``finding.kind``, ``finding.score``, ``finding.detector``.

Example:
    >>> r = scan(ws, "street@main", ["exact_duplicates", "image_problems"])   # doctest: +SKIP
    >>> r.counts                                                              # doctest: +SKIP
    {'dark': 1, 'exact_duplicate': 2}
    >>> findings(ws, "street@main", kind="dark")[0]["key"]                    # doctest: +SKIP
    'images/night.jpg'
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from viewfinder.errors import InvalidInput
from viewfinder.quality import detectors as registry
from viewfinder.quality.context import Progress
from viewfinder.services import versions as vs
from viewfinder.storage.workspace import Workspace

DEFAULT_DETECTORS: tuple[str, ...] = (
    "exact_duplicates", "near_duplicates", "image_problems", "outliers",
    "overlapping_annotations",
)
"""What ``scan`` runs when no detectors are named: every detector that works on any
dataset. The label-error detectors compare labels with a model's predictions, so they run
when named (``["label_errors_detection"]``) on a version that holds predictions."""


@dataclass(frozen=True)
class ScanResult:
    """What a scan found and stored."""

    dataset: str
    version: str
    detectors: list[str]
    counts: dict[str, int]                     # findings per kind
    per_detector: dict[str, int]               # findings per detector
    run_id: str
    seconds: float
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # validated, defaults filled

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "version": self.version, "detectors": self.detectors,
                "counts": self.counts, "per_detector": self.per_detector, "total": self.total,
                "run_id": self.run_id, "seconds": round(self.seconds, 3), "params": self.params}


def _plan(detectors: list[str] | None,
          params: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Validate detector names and parameters before anything runs; returns each
    detector's full configuration (defaults filled in), in run order."""
    names = list(dict.fromkeys(detectors)) if detectors else list(DEFAULT_DETECTORS)
    if not names:
        raise InvalidInput("name at least one detector to scan with; known: "
                           + ", ".join(registry.names()))
    params = params or {}
    stray = sorted(set(params) - set(names))
    if stray:
        raise InvalidInput(f"parameters given for detector(s) {', '.join(stray)} that this "
                           f"scan does not run (it runs {', '.join(names)})")
    plan: dict[str, dict[str, Any]] = {}
    for name in names:
        det = registry.get(name)
        plan[name] = registry.make_config(det, params.get(name)).model_dump(mode="json")
    return plan


def scan(ws: Workspace, spec: str, detectors: list[str] | None = None,
         params: dict[str, dict[str, Any]] | None = None,
         progress: Progress | None = None) -> ScanResult:
    """Run detectors on a version and store their findings with it.

    Args:
        ws: the open workspace.
        spec: ``NAME`` or ``NAME@REF``.
        detectors: registry names (see ``quality.detectors.names()``); default: all of
            :data:`DEFAULT_DETECTORS`.
        params: per-detector parameters, e.g. ``{"image_problems": {"dark_max": 0.05}}``;
            a misspelled detector or option is an error, not ignored.
        progress: ``progress(stage, done, total)`` as detectors advance.

    Returns:
        Counts of findings per kind and per detector, and the Run that recorded the scan.

    Raises:
        InvalidInput: an unknown detector or parameter (nothing has run).
        DatasetNotFound, RefNotFound: ``spec`` names nothing.
        StorageError: the findings cannot be stored (the Run is marked failed).
    """
    from viewfinder.quality.context import QualityContext
    from viewfinder.quality.findings import FINDINGS_SCHEMA, to_table
    from viewfinder.storage import findings as stored

    t0 = time.perf_counter()
    at = vs.resolve(ws, spec)
    plan = _plan(detectors, params)
    names = list(plan)
    run_id = ws.catalog.start_run(
        dataset_id=at.dataset.id, operation="scan",
        params={"version": at.version.id, "ref": at.ref, "detectors": names, "params": plan},
        author=vs.current_user(), code_version=vs.code_version())
    try:
        import pyarrow as pa

        tables = []
        with QualityContext(ws, at, progress=progress) as ctx:
            for name in names:
                found = registry.run(ctx, name, plan[name])
                tables.append(to_table(found, version_id=at.version.id, detector=name))
        table = pa.concat_tables(tables) if tables else FINDINGS_SCHEMA.empty_table()
        stored.replace(ws, at.dataset, at.version.id, names, table)
    except Exception as e:
        ws.catalog.finish_run(run_id, status="failed", error=str(e))
        raise
    counts = {r["kind"]: r["kind_count"] for r in
              table.group_by("kind").aggregate([("kind", "count")]).to_pylist()}
    per_detector = {name: t.num_rows for name, t in zip(names, tables, strict=True)}
    result = ScanResult(dataset=at.dataset.name, version=at.version.id, detectors=names,
                        counts=dict(sorted(counts.items())), per_detector=per_detector,
                        run_id=run_id, seconds=time.perf_counter() - t0, params=plan)
    ws.catalog.finish_run(run_id, status="succeeded", outputs={
        "version": at.version.id, "counts": result.counts, "per_detector": per_detector})
    return result


def findings(ws: Workspace, spec: str, kind: str | None = None, detector: str | None = None,
             limit: int | None = None, *, filter: str | None = None) -> list[dict[str, Any]]:
    """The stored findings of a version, each with its sample's key and split.

    Args:
        ws: the open workspace.
        spec: ``NAME`` or ``NAME@REF``.
        kind: only findings of this kind (e.g. ``"near_duplicate"``).
        detector: only findings of this detector.
        limit: at most this many (the highest scores first).
        filter: only findings on the samples matching this filter (a slice, an id).

    Returns:
        Dicts with ``kind``, ``detector``, ``score``, ``sample_id``, ``key``, ``split``,
        ``label_id``, ``group_id`` and ``evidence`` (a dict), highest score first; an empty
        list for a version that was never scanned.
    """
    from viewfinder.storage.reader import VersionReader

    if limit is not None and limit < 0:
        raise InvalidInput(f"limit must be 0 or more, got {limit}")
    at = vs.resolve(ws, spec)
    where, args = [], []
    for column, value in (("kind", kind), ("detector", detector)):
        if value is not None:
            where.append(f"f.{column} = ?")
            args.append(value)
    sql = ("SELECT f.kind, f.detector, f.score, f.sample_id, s.key, s.split, f.label_id, "
           "f.group_id, f.evidence FROM findings f JOIN {m} AS s ON s.id = f.sample_id"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY f.score DESC, f.kind, s.key, f.label_id NULLS FIRST, f.detector")
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    with VersionReader(ws, at, filter) as r:
        rows = r.query(sql, args).to_pylist()
    for row in rows:
        row["evidence"] = json.loads(row["evidence"] or "{}")
    return rows
