#!/usr/bin/env python3
"""Scan benchmark at scale: the detectors that read tables only, on 1M samples / 10M labels.

    .venv/bin/python bench/quality_scan.py [--samples 1000000] [--labels-per-sample 10] [--keep]

Builds the scale dataset of ``bench/scale.py`` (Arrow tables made with NumPy, one commit
through ``services.versions.commit``) in a fresh folder under /tmp, with ground truth
planted in it:

- **exact duplicates**: every sample has its own content hash, except 1 % of them, which
  take the hash of another sample (groups of two);
- **overlapping annotations**: 1 % of the samples get a second copy of their first box,
  same class, shifted by 2 % of its width (IoU ≈ 0.96). The random boxes of the scale
  dataset essentially never reach IoU 0.9 with a box of their own class by chance.

Then it times ``services.scan.scan`` with ``exact_duplicates`` and
``overlapping_annotations`` (detection + findings stored), checks precision and recall
against the planted truth, times a rescan (the findings replaced in one Lance commit),
``services.scan.findings`` of one kind, and a ``finding.kind == ...`` filter count (first
call builds the version's query cache; the second is the steady state). Prints the
figures and appends them to bench/RESULTS.md with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from run import machine  # noqa: E402  (one machine description for every benchmark)


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def plant(samples: pa.Table, labels: pa.Table, per_sample: int, fraction: float, seed: int,
          ) -> tuple[pa.Table, pa.Table, set[str], set[str]]:
    """Unique content hashes with planted exact duplicates, and planted double boxes.
    Returns the tables and the sample ids of the duplicates and of the double boxes."""
    from viewfinder.storage import rows

    rng = np.random.default_rng(seed)
    n = samples.num_rows
    hashes = np.char.add("h", np.char.zfill(np.arange(n).astype(str), 63))
    picked = rng.choice(n, size=2 * int(n * fraction), replace=False)
    src, dst = picked[::2], picked[1::2]
    hashes[dst] = hashes[src]
    samples = samples.set_column(samples.schema.get_field_index("content_hash"), "content_hash",
                                 pa.array(hashes))
    dup_ids = set(samples.column("id").take(pa.array(np.concatenate([src, dst]))).to_pylist())

    doubled = rng.choice(n, size=int(n * fraction), replace=False)
    first = labels.take(pa.array(doubled * per_sample))  # each sample's first box
    x = pc.add(first.column("x"), pc.multiply(first.column("w"), 0.02))
    copies = first.set_column(first.schema.get_field_index("x"), "x", x)
    copies = copies.set_column(copies.schema.get_field_index("id"), "id",
                               pa.array(np.char.add("dup", np.arange(len(doubled)).astype(str))))
    labels = pa.concat_tables([labels.drop_columns(["row_hash"]),
                               copies.drop_columns(["row_hash"])])
    double_ids = set(first.column("sample_id").to_pylist())
    return (rows.with_row_hash(samples.drop_columns(["row_hash"]), "samples"),
            rows.with_row_hash(labels, "labels"), dup_ids, double_ids)


def verified_overlaps(ws: object, rows: list[dict[str, object]]) -> set[str]:
    """Samples of the findings whose two boxes really have one class and IoU > 0.9,
    recomputed from the labels table with NumPy (independently of the detector's SQL)."""
    from viewfinder.services import versions as vs

    at = vs.resolve(ws, "big")  # type: ignore[arg-type]
    pairs = [(x["label_id"], x["evidence"]["duplicate_of"]) for x in rows]  # type: ignore[index]
    ids = pa.array(sorted({i for p in pairs for i in p}), pa.string())
    table = ws.tables(at.dataset).read("labels", at.version.labels_table_version,  # type: ignore[attr-defined]
                                       columns=["id", "sample_id", "class_name", "x", "y", "w", "h"])
    table = table.filter(pc.is_in(table.column("id"), value_set=ids))
    box = {r["id"]: r for r in table.to_pylist()}
    out = set()
    for a, b in pairs:
        p, q = box[a], box[b]
        iw = max(0.0, min(p["x"] + p["w"], q["x"] + q["w"]) - max(p["x"], q["x"]))
        ih = max(0.0, min(p["y"] + p["h"], q["y"] + q["h"]) - max(p["y"], q["y"]))
        inter = iw * ih
        iou = inter / (p["w"] * p["h"] + q["w"] * q["h"] - inter)
        if iou > 0.9 and p["class_name"] == q["class_name"] and p["sample_id"] == q["sample_id"]:
            out.add(p["sample_id"])
    return out




def prf(found: set[str], truth: set[str]) -> tuple[float, float]:
    hit = len(found & truth)
    return (hit / len(found) if found else 1.0), (hit / len(truth) if truth else 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--labels-per-sample", type=int, default=10)
    ap.add_argument("--fraction", type=float, default=0.01, help="share of samples planted")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the workspace folder")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    from scale import CLASSES, build_tables

    from viewfinder.services import look
    from viewfinder.services import scan as scans
    from viewfinder.services import versions as vs
    from viewfinder.storage.tables import TableChange
    from viewfinder.storage.workspace import init_workspace

    load = "/".join(f"{x:.1f}" for x in os.getloadavg())  # a shared machine: say how busy
    out = Path(tempfile.mkdtemp(prefix="vf-bench-scan-"))
    r: dict[str, object] = {}
    try:
        t = time.perf_counter()
        samples, labels = build_tables(args.samples, args.labels_per_sample, args.seed)
        samples, labels, dup_ids, double_ids = plant(samples, labels, args.labels_per_sample,
                                                     args.fraction, args.seed)
        log(f"built {samples.num_rows:,} samples, {labels.num_rows:,} labels "
            f"({time.perf_counter() - t:.1f} s)")
        ws = init_workspace(out / "ws")
        ds = vs.create_dataset(ws, "big", classes=CLASSES).dataset

        r.update(samples=samples.num_rows, labels=labels.num_rows)
        bulk = {"samples": samples, "labels": labels}
        del samples, labels

        def build(head, tables):  # type: ignore[no-untyped-def]
            ch = vs.Changes(samples=TableChange(upserts=bulk["samples"]),
                            labels=TableChange(upserts=bulk["labels"]))
            ch.counts["samples"]["added"] = bulk["samples"].num_rows
            ch.counts["labels"]["added"] = bulk["labels"].num_rows
            return ch

        vs.commit(ws, ds, "main", build, message="bulk load")
        bulk.clear()  # the tables are in Lance now: free the memory for the scan
        detectors = ["exact_duplicates", "overlapping_annotations"]

        t = time.perf_counter()
        result = scans.scan(ws, "big", detectors)
        r["scan_s"] = round(time.perf_counter() - t, 2)
        r["counts"] = result.counts
        log(f"scan: {result.counts} in {r['scan_s']} s")
        for kind, truth, name in (("exact_duplicate", dup_ids, "exact"),
                                  ("overlapping_annotation", double_ids, "overlap")):
            t = time.perf_counter()
            rows = scans.findings(ws, "big", kind=kind)
            r[f"findings_{name}_s"] = round(time.perf_counter() - t, 2)
            found = {x["sample_id"] for x in rows}
            if name == "overlap":  # random boxes do overlap by chance, now and then: verify
                real = verified_overlaps(ws, rows)
                r["overlap_chance_pairs"] = len(real - truth)
                truth = truth | real
            p, rec = prf(found, truth)
            r[f"{name}_precision"], r[f"{name}_recall"] = round(p, 4), round(rec, 4)
        t = time.perf_counter()
        again = scans.scan(ws, "big", detectors)
        r["rescan_s"] = round(time.perf_counter() - t, 2)
        assert again.counts == result.counts
        flt = 'finding.kind == "overlapping_annotation"'
        t = time.perf_counter()
        n_first = look.count(ws, "big", flt)
        r["filter_count_first_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        n = look.count(ws, "big", flt)
        r["filter_count_ms"] = round((time.perf_counter() - t) * 1000, 1)
        assert n == n_first == len(double_ids) + int(r["overlap_chance_pairs"]), (n, n_first)
        log(json.dumps(r))
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    text = "\n".join([
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — scan (table detectors) at scale",
        "",
        f"Machine: {machine()}; load average {load}",
        f"Command: `.venv/bin/python bench/quality_scan.py {' '.join(sys.argv[1:])}`".rstrip() + "",
        "",
        "| figure | measured |",
        "|---|---|",
        f"| dataset | {r['samples']:,} samples, {r['labels']:,} labels |",
        f"| `scan` exact_duplicates + overlapping_annotations (detect + store) | {r['scan_s']} s |",
        f"| findings | {r['counts']} |",
        f"| exact duplicates: precision / recall vs planted | {r['exact_precision']} / {r['exact_recall']} |",
        (f"| overlapping annotations: precision / recall vs planted + verified chance pairs "
         f"({r['overlap_chance_pairs']}) | {r['overlap_precision']} / {r['overlap_recall']} |"),
        f"| rescan (findings replaced in one commit) | {r['rescan_s']} s |",
        f"| `findings --kind exact_duplicate` / `overlapping_annotation` | {r['findings_exact_s']} s / {r['findings_overlap_s']} s |",
        f"| filter count `{flt}`, first call (builds the query cache) | {r['filter_count_first_s']} s |",
        f"| the same filter count again | {r['filter_count_ms']} ms |",
        "",
        f"Raw figures: `{json.dumps(r, sort_keys=True)}`",
        "",
    ])
    print(text)
    if not args.no_write:
        with open(HERE / "RESULTS.md", "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
