#!/usr/bin/env python3
"""``viewfinder check`` at scale: the default suite on 1M samples / 10M labels, no pixels.

    .venv/bin/python bench/quality_check.py [--samples 1000000] [--labels-per-sample 10] [--no-write]

Builds the dataset with ``bench/scale.py``'s tables (Arrow straight into one commit) in a
fresh folder under /tmp, runs the default suite without pixels (checks that read images
are skipped or run reduced, as with ``viewfinder check --no-pixels``), prints each check's
time and outcome, appends a section to ``bench/RESULTS.md`` and deletes the folder.
Target (issue 3): < 30 s for the whole suite.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from viewfinder.storage.catalog import VersionRecord
    from viewfinder.storage.tables import DatasetTables
    from viewfinder.storage.workspace import Workspace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import machine
from scale import CLASSES, build_tables


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def load(ws: Workspace, n_samples: int, per_sample: int) -> tuple[int, int]:
    """Commit bench/scale.py's tables as dataset ``big``; (samples, labels)."""
    from viewfinder.services import versions as vs
    from viewfinder.storage.tables import TableChange

    samples, labels = build_tables(n_samples, per_sample)
    ds = vs.create_dataset(ws, "big", classes=CLASSES).dataset

    def build(head: VersionRecord, tables: DatasetTables) -> vs.Changes:
        ch = vs.Changes(samples=TableChange(upserts=samples), labels=TableChange(upserts=labels))
        ch.counts["samples"]["added"], ch.counts["labels"]["added"] = samples.num_rows, labels.num_rows
        return ch

    vs.commit(ws, ds, "main", build, message="bulk load")
    return samples.num_rows, labels.num_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--labels-per-sample", type=int, default=10)
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    from viewfinder.services import checks as svc
    from viewfinder.storage.workspace import init_workspace

    out = Path(tempfile.mkdtemp(prefix="vf-quality-check-"))
    try:
        t0 = time.perf_counter()
        ws = init_workspace(out / "ws")
        n_samples, n_labels = load(ws, args.samples, args.labels_per_sample)
        log(f"built and committed {n_samples:,} samples / {n_labels:,} labels in {time.perf_counter() - t0:.1f} s")

        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        report = svc.run_checks(ws, "big", pixels=False)
        total = time.perf_counter() - t
        load_avg = max(load_before, os.getloadavg()[0])
        rows = [(o.name, o.check, o.status, round(o.seconds, 2), o.message) for o in report.outcomes]
        for name, check, status, secs, msg in rows:
            log(f"{secs:7.2f} s  {status:8} {check:16} {msg[:90]}")
        log(f"default suite without pixels: {total:.2f} s (target < 30 s)")
        ws.close()
    finally:
        shutil.rmtree(out, ignore_errors=True)

    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — check suite at scale (issue 3)",
        "",
        f"Machine: {machine()}; load average during the run ≈ {load_avg:.1f} (other work on the machine)",
        f"Command: `{' '.join(['.venv/bin/python', 'bench/quality_check.py', *sys.argv[1:]])}`",
        "",
        (f"Dataset: bench/scale.py tables, {n_samples:,} samples / {n_labels:,} labels "
         "(640×480, 1,000 shared content hashes, so split hygiene and duplicates fail by design)."),
        "",
        "| figure | target | measured |",
        "|---|---|---|",
        (f"| `check` default suite, no pixels, {n_samples // 1000:,}k samples / {n_labels // 1_000_000}M labels "
         f"| < 30 s | {total:.1f} s |"),
        *[f"| — {name} ({check}) | — | {secs} s, {status} |" for name, check, status, secs, _ in rows],
        "",
        f"Raw figures: `{json.dumps({'samples': n_samples, 'labels': n_labels, 'total_s': round(total, 2), 'checks': {r[0]: {'seconds': r[3], 'status': r[2]} for r in rows}}, sort_keys=True)}`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        with open(HERE / "RESULTS.md", "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
