"""Build a large synthetic dataset straight into a workspace (no image files).

At 1M samples / 10M labels a COCO file and a Python object per label would only measure
the JSON parser, so this writes Arrow tables built with NumPy and commits them through
the same service path as any other commit (``services.versions.commit``). Samples share
a small pool of content hashes ("images may be tiny or shared at that scale").

    python bench/scale.py WORKSPACE --samples 1000000 --labels-per-sample 10
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pyarrow as pa

CLASSES = ["car", "person", "bicycle", "dog", "cat", "truck", "bus", "bird", "boat", "sign"]


def build_tables(n_samples: int, per_sample: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    from viewfinder.storage import rows

    rng = np.random.default_rng(seed)
    sid = np.char.add("s", np.char.zfill(np.arange(n_samples).astype(str), 15))
    keys = np.char.add(np.char.add("images/", np.char.zfill(np.arange(n_samples).astype(str), 8)), ".jpg")
    split = np.where(rng.random(n_samples) < 0.1, "val", "train")
    region = rng.choice(["EU", "APAC", "NA"], n_samples)
    pool = [f"{i:064x}" for i in range(1000)]
    samples = pa.table({
        "id": pa.array(sid), "key": pa.array(keys),
        "content_hash": pa.array(np.array(pool)[rng.integers(0, 1000, n_samples)]),
        "width": pa.array(np.full(n_samples, 640, np.int32)),
        "height": pa.array(np.full(n_samples, 480, np.int32)),
        "size_bytes": pa.array(rng.integers(20_000, 90_000, n_samples)),
        "media_type": pa.array(np.full(n_samples, "image/jpeg")),
        "split": pa.array(split),
        "tags": pa.array([[] for _ in range(n_samples)], pa.list_(pa.string())),
        "metadata": pa.array(np.char.add(np.char.add('{"region":"', region), '"}')),
    })
    n = n_samples * per_sample
    lid = np.char.add("l", np.char.zfill(np.arange(n).astype(str), 15))
    w = rng.uniform(4, 200, n)
    h = rng.uniform(4, 200, n)
    labels = pa.table({
        "id": pa.array(lid), "sample_id": pa.array(np.repeat(sid, per_sample)),
        "kind": pa.array(np.full(n, "box")),
        "class_name": pa.array(np.array(CLASSES)[rng.integers(0, len(CLASSES), n)]),
        "x": pa.array(rng.uniform(0, 400, n)), "y": pa.array(rng.uniform(0, 250, n)),
        "w": pa.array(w), "h": pa.array(h), "area": pa.array(w * h),
        "iscrowd": pa.array(np.zeros(n, bool)),
        "polygon": pa.nulls(n, pa.list_(pa.list_(pa.float64()))),
        "mask": pa.nulls(n, pa.string()), "keypoints": pa.nulls(n, pa.list_(pa.float64())),
        "attributes": pa.array(np.full(n, "{}")), "score": pa.nulls(n, pa.float64()),
        "source": pa.array(np.full(n, "ground_truth")), "source_id": pa.nulls(n, pa.string()),
    })
    return rows.with_row_hash(samples, "samples"), rows.with_row_hash(labels, "labels")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace")
    ap.add_argument("--dataset", default="big")
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--labels-per-sample", type=int, default=10)
    args = ap.parse_args()

    from viewfinder.services import versions as vs
    from viewfinder.storage.tables import TableChange
    from viewfinder.storage.workspace import init_workspace

    t0 = time.perf_counter()
    samples, labels = build_tables(args.samples, args.labels_per_sample)
    print(f"built {samples.num_rows:,} samples and {labels.num_rows:,} labels in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    ws = init_workspace(args.workspace)
    ds = vs.create_dataset(ws, args.dataset, classes=CLASSES).dataset
    t0 = time.perf_counter()

    def build(head, tables):  # type: ignore[no-untyped-def]
        ch = vs.Changes(samples=TableChange(upserts=samples), labels=TableChange(upserts=labels))
        ch.counts["samples"]["added"], ch.counts["labels"]["added"] = samples.num_rows, labels.num_rows
        return ch

    v = vs.commit(ws, ds, "main", build, message="bulk load").version
    print(f"committed version {v.id} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
