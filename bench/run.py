#!/usr/bin/env python3
"""Viewfinder's benchmark: every figure of the foundation issue, in one run.

    .venv/bin/python bench/run.py [--images 10000 100000] [--samples 1000000] [--out DIR]
                                  [--sources DIR] [--no-million-labels]

Writes each run to a fresh folder (default ``bench/out/<timestamp>``; this machine's file
system is 3–4× slower creating files soon after deleting many, so nothing is deleted until
the end), prints progress, and appends a section with the machine and the figures to
``bench/RESULTS.md``. Reference figures for the peer tools were measured on this machine
by the issue's author and are quoted, not re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VF = str(ROOT / ".venv" / "bin" / "viewfinder")
PY = sys.executable

RUNS = 3
"""Imports of the 10k set (fresh workspaces) and its exports (fresh folders); the median is
the figure."""
REFERENCE = {  # seconds, measured on this machine class (quoted from the issue)
    "fiftyone_import_10k": 22.5, "fiftyone_yolo_export_10k": 12.0, "datumaro_coco_to_yolo_10k": 5.9,
}


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


MEASURE = """import ctypes, json, os, resource, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t
while True:  # reap the orphans (forkserver, pool workers): their CPU joins ours
    try:
        os.wait()
    except ChildProcessError:
        break
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "cpu": r.ru_utime + r.ru_stime, "rss_mb": r.ru_maxrss / 1024}))
"""
"""Runs a command as a child subreaper (Linux): worker processes started through a
forkserver are the command's grandchildren and outlive it, so ``RUSAGE_CHILDREN`` of a
plain ``subprocess.run`` misses their CPU time."""


def settle() -> None:
    """Write back the dirty pages of earlier steps, untimed: this VM's disk (~16 MB/s when
    busy) otherwise charges a previous import's blobs to whatever is timed next."""
    t = time.perf_counter()
    os.sync()
    if (waited := time.perf_counter() - t) > 1:
        log(f"waited {waited:.0f} s for earlier writes to reach the disk")


def measured(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB, the largest process) and CPU seconds (user + system of
    the command and every process it started) of one run of ``cmd``.

    Dirty pages of earlier steps are written back first (:func:`settle`). CPU time is the
    steadier figure on a shared VM whose file system's speed varies."""
    settle()
    res = subprocess.run([PY, "-c", MEASURE, *cmd], check=True, capture_output=True, text=True)
    m = json.loads(res.stdout.strip().splitlines()[-1])
    if m["rc"]:
        raise subprocess.CalledProcessError(m["rc"], cmd)
    return m["wall"], m["rss_mb"], m["cpu"]


def timed(cmd: list[str]) -> float:
    """Wall seconds of one run of ``cmd`` (see :func:`measured`)."""
    return measured(cmd)[0]


API_EXPORT = """import sys, time
import viewfinder as vf
ws = vf.open_workspace(sys.argv[1])
t = time.perf_counter()
ws.dataset("b").export("yolo", sys.argv[2], images="link")
print(time.perf_counter() - t)
"""
"""The YOLO link export through the Python API, timed inside one process: the call a
FiftyOne user times as ``dataset.export(...)`` (Python start and imports not counted)."""


def best_ms(fn, n: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import duckdb
    import lance
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, pylance {lance.__version__}, duckdb {duckdb.__version__}")


def warm(src: Path) -> None:
    """Read every file of ``src`` once, untimed: the imports then measure Viewfinder, not
    this VM's disk (cold, 100k small JPEGs read at ~20 MB/s made one run 10× slower than
    its CPU time)."""
    t = time.perf_counter()
    size = 0
    for dirpath, _dirs, files in os.walk(src):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while chunk := fh.read(1 << 20):
                    size += len(chunk)
    log(f"read {size / 2**20:,.0f} MB of {src} into the page cache in {time.perf_counter() - t:.1f} s")


def bench_import_export(out: Path, n: int, results: dict, sources: Path | None = None) -> None:
    src = out / f"coco{n}"
    if sources is not None and (sources / f"coco{n}").is_dir():
        src = sources / f"coco{n}"  # generated earlier by generate.py (same seed, same data)
        log(f"using {src}")
    else:
        log(f"generating {n:,} images")
        subprocess.run([PY, str(HERE / "generate.py"), str(src), "--images", str(n), "--workers", "2"],
                       check=True, stderr=subprocess.DEVNULL)
    warm(src)
    runs = RUNS if n <= 10_000 else 1
    walls, cpus, rss = [], [], 0.0
    for i in range(runs):  # each into a fresh workspace; the last one is used below
        ws = out / f"ws{n}-{i}"
        subprocess.run([VF, "init", str(ws)], check=True, stdout=subprocess.DEVNULL)
        log(f"importing {n:,} images ({i + 1}/{runs})")
        w, m, c = measured([VF, "import", str(src), "-d", "b", "--format", "coco", "-w", str(ws)])
        walls.append(w)
        cpus.append(c)
        rss = max(rss, m)
    wall = sorted(walls)[len(walls) // 2]  # the median run: this file system's speed varies
    labels = json.loads(subprocess.run([VF, "stats", "b", "--json", "-w", str(ws)], check=True,
                                       capture_output=True, text=True).stdout)["labels"]
    again = timed([VF, "import", str(src), "-d", "b", "--format", "coco", "-w", str(ws)])
    r = {"images": n, "labels": labels, "import_s": round(wall, 2), "images_per_s": round(n / wall),
         "import_runs_s": [round(w, 2) for w in walls],
         "import_cpu_s": round(sorted(cpus)[len(cpus) // 2], 2),
         "peak_rss_mb": round(rss), "reimport_unchanged_s": round(again, 2)}
    if n <= 10_000:
        for fmt, images in (("yolo", "link"), ("coco", "copy"), ("yolo", "copy")):
            walls = []
            for i in range(runs):  # each into a fresh folder, like the imports
                log(f"exporting {n:,} as {fmt} ({images}) ({i + 1}/{runs})")
                walls.append(timed([VF, "export", "b", str(out / f"exp{n}-{fmt}-{images}-{i}"),
                                    "--format", fmt, "--images", images, "-w", str(ws)]))
            r[f"export_{fmt}_{images}_s"] = round(sorted(walls)[len(walls) // 2], 2)
            r[f"export_{fmt}_{images}_runs_s"] = [round(w, 2) for w in walls]
        log(f"exporting {n:,} as yolo (link) through the Python API")
        settle()
        api = subprocess.run([PY, "-c", API_EXPORT, str(ws), str(out / f"exp{n}-yolo-link-api")],
                             check=True, capture_output=True, text=True)
        r["export_yolo_link_api_s"] = round(float(api.stdout.strip().splitlines()[-1]), 2)
    results[f"import_{n}"] = r
    log(json.dumps(r))


MILLION_LABELS = {"images": 222_000, "unique_images": 10_000}
"""The 1M-label import for peak memory: 222k images of ~4.5 boxes (the 10k set's density),
as hard links to 10k rendered JPEGs (so generating it writes 200 MB, not 4.4 GB)."""


def bench_million_labels(out: Path, results: dict, sources: Path | None = None) -> None:
    """Import ~1M labels into a fresh workspace: peak memory (target < 1.5 GB) and speed."""
    src = out / "coco1mlabels"
    if sources is not None and (sources / "coco1mlabels").is_dir():
        src = sources / "coco1mlabels"
        log(f"using {src}")
    else:
        log(f"generating {MILLION_LABELS['images']:,} images (~1M labels)")
        subprocess.run([PY, str(HERE / "generate.py"), str(src), "--images", str(MILLION_LABELS["images"]),
                        "--unique-images", str(MILLION_LABELS["unique_images"]), "--workers", "2"],
                       check=True, stderr=subprocess.DEVNULL)
    warm(src)
    ws = out / "ws1mlabels"
    subprocess.run([VF, "init", str(ws)], check=True, stdout=subprocess.DEVNULL)
    log("importing ~1M labels")
    wall, rss, cpu = measured([VF, "import", str(src), "-d", "b", "--format", "coco", "-w", str(ws)])
    labels = json.loads(subprocess.run([VF, "stats", "b", "--json", "-w", str(ws)], check=True,
                                       capture_output=True, text=True).stdout)["labels"]
    r = {"images": MILLION_LABELS["images"], "labels": labels, "import_s": round(wall, 2),
         "images_per_s": round(MILLION_LABELS["images"] / wall), "import_cpu_s": round(cpu, 2),
         "peak_rss_mb": round(rss)}
    results["import_1m_labels"] = r
    log(json.dumps(r))


def bench_scale(out: Path, n_samples: int, results: dict) -> None:
    import numpy as np
    import pyarrow as pa

    sys.path.insert(0, str(HERE))
    from scale import CLASSES, build_tables  # type: ignore[import-not-found]

    from viewfinder.services import diff as diff_service
    from viewfinder.services import look
    from viewfinder.services import versions as vs
    from viewfinder.storage import query_cache
    from viewfinder.storage.rows import with_row_hash
    from viewfinder.storage.tables import TableChange
    from viewfinder.storage.workspace import init_workspace

    per = 10
    log(f"building {n_samples:,} samples / {n_samples * per:,} labels")
    samples, labels = build_tables(n_samples, per)
    ws = init_workspace(out / "wsscale")
    ds = vs.create_dataset(ws, "big", classes=CLASSES).dataset
    n_labels = labels.num_rows
    bulk = vs.Changes(samples=TableChange(upserts=samples), labels=TableChange(upserts=labels))
    del samples, labels  # the commit holds the only references: freed after it

    settle()
    t = time.perf_counter()
    base = vs.commit(ws, ds, "main", lambda head, tables: bulk, message="bulk load").version
    r: dict = {"samples": n_samples, "labels": n_labels, "bulk_commit_s": round(time.perf_counter() - t, 1)}
    bulk = vs.Changes()
    spec = "big"
    flt = 'label.class == "car" and label.area < 1024'
    r["stats_per_class_ms"] = round(best_ms(lambda: look.stats(ws, spec)), 1)
    at = vs.resolve(ws, spec)
    t = time.perf_counter()
    query_cache.build(ws, at.dataset, at.version)
    r["query_cache_build_s"] = round(time.perf_counter() - t, 1)

    def fresh(fn):  # type: ignore[no-untyped-def]
        """``fn`` with this process's match cache emptied first: the figure is the filter's
        own cost, not a lookup of a match an earlier repetition computed."""
        def run():  # type: ignore[no-untyped-def]
            look.forget_matches()
            return fn()
        return run

    r["filtered_count_ms"] = round(best_ms(fresh(lambda: look.count(ws, spec, flt))), 1)
    r["filtered_count_repeat_ms"] = round(best_ms(lambda: look.count(ws, spec, flt)), 1)
    r["filtered_stats_ms"] = round(best_ms(lambda: look.stats(ws, spec, flt)), 1)
    r["page_100_label_filter_ms"] = round(best_ms(fresh(lambda: look.samples_page(
        ws, spec, 'label.class == "dog" and label.area < 500', limit=100))), 1)
    r["page_100_sample_filter_ms"] = round(best_ms(fresh(lambda: look.samples_page(
        ws, spec, 'split == "val" and metadata.region == "APAC"', limit=100))), 1)

    log("committing an edit of 1% of the labels")
    tables = ws.tables(at.dataset)
    size_before = _du(Path(tables.base))
    rng = np.random.default_rng(7)
    n_edit = r["labels"] // 100
    pick = np.sort(rng.choice(r["labels"], n_edit, replace=False)).astype(np.uint64)
    rows = tables.open("labels", base.labels_table_version)._take_rows(pa.array(pick))
    rows = rows.set_column(rows.schema.get_field_index("class_name"), "class_name",
                           pa.array(np.full(rows.num_rows, "relabelled")))
    rows = with_row_hash(rows, "labels")

    def edit(head, tables):  # type: ignore[no-untyped-def]
        ch = vs.Changes(labels=TableChange(upserts=rows))
        ch.counts["labels"]["changed"] = rows.num_rows
        return ch

    settle()
    t = time.perf_counter()
    edited = vs.commit(ws, at.dataset, "main", edit, message="relabel 1%").version
    r["commit_1pct_s"] = round(time.perf_counter() - t, 2)
    r["commit_1pct_labels"] = n_edit
    r["storage_before_mb"] = round(size_before / 1e6, 1)
    r["storage_growth_mb"] = round((_du(Path(tables.base)) - size_before) / 1e6, 1)
    settle()
    t = time.perf_counter()
    d = diff_service.diff(ws, "big", base.id, edited.id)
    r["diff_s"] = round(time.perf_counter() - t, 2)
    r["diff_labels"] = d.labels.counts()
    vs.branch(ws, "big", "other", from_ref=base.id)
    t = time.perf_counter()
    d2 = diff_service.diff(ws, "big", edited.id, "other")  # not an ancestor: full join
    r["diff_full_join_s"] = round(time.perf_counter() - t, 2)
    assert d2.labels.counts()["changed"] == d.labels.counts()["changed"]
    results["scale"] = r
    log(json.dumps(r))


def _du(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _runs(r: dict, name: str) -> str:
    """``; median of a, b, c s`` when the step ran more than once."""
    runs = r.get(f"{name}_runs_s", [])
    return f"; median of {', '.join(map(str, runs))} s" if len(runs) > 1 else ""


def write_results(results: dict, args: argparse.Namespace) -> str:
    i10 = results.get("import_10000", {})
    i100 = results.get("import_100000", {})
    sc = results.get("scale", {})
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}",
        f"Command: `{' '.join(['.venv/bin/python', 'bench/run.py', *sys.argv[1:]])}`",
        "",
        "| figure | target | measured |",
        "|---|---|---|",
    ]

    def row(name: str, target: str, value: object) -> None:
        lines.append(f"| {name} | {target} | {value} |")

    if i10:
        row("import 10k COCO (320×240 JPEG, ~4.5 boxes each)", f"≥ 10× FiftyOne ({REFERENCE['fiftyone_import_10k']} s) → ≤ 2.25 s",
            f"{i10['import_s']} s = {i10['images_per_s']:,} images/s "
            f"({REFERENCE['fiftyone_import_10k'] / i10['import_s']:.1f}× FiftyOne), peak {i10['peak_rss_mb']} MB"
            + _runs(i10, "import")
            + (f"; CPU {i10['import_cpu_s']} s (user + system, pool workers included)" if "import_cpu_s" in i10 else ""))
        row("re-import unchanged 10k (no new version)", "—", f"{i10['reimport_unchanged_s']} s")
        row("export 10k to YOLO, --images link", f"≥ 10× FiftyOne YOLO export ({REFERENCE['fiftyone_yolo_export_10k']} s) → ≤ 1.2 s",
            f"{i10.get('export_yolo_link_s')} s ({REFERENCE['fiftyone_yolo_export_10k'] / i10['export_yolo_link_s']:.1f}×), "
            "CLI command, Python start and imports included" + _runs(i10, "export_yolo_link"))
        if "export_yolo_link_api_s" in i10:
            row("same, `dataset.export()` in one Python process (start and imports not counted, as a "
                "FiftyOne `export()` call is timed)", "≤ 1.2 s",
                f"{i10['export_yolo_link_api_s']} s ({REFERENCE['fiftyone_yolo_export_10k'] / i10['export_yolo_link_api_s']:.1f}×)")
        row("export 10k to COCO, --images copy", f"< Datumaro COCO→YOLO ({REFERENCE['datumaro_coco_to_yolo_10k']} s)",
            f"{i10.get('export_coco_copy_s')} s" + _runs(i10, "export_coco_copy"))
        row("export 10k to YOLO, --images copy", f"< Datumaro COCO→YOLO ({REFERENCE['datumaro_coco_to_yolo_10k']} s)",
            f"{i10.get('export_yolo_copy_s')} s" + _runs(i10, "export_yolo_copy"))
    if i100:
        row(f"import 100k COCO ({i100['labels']:,} labels)", "≥ 5,000 images/s",
            f"{i100['import_s']} s = {i100['images_per_s']:,} images/s, peak {i100['peak_rss_mb']} MB"
            + (f"; CPU {i100['import_cpu_s']} s" if "import_cpu_s" in i100 else ""))
    m = results.get("import_1m_labels", {})
    if m:
        row(f"import {m['labels']:,} labels ({m['images']:,} COCO images, hard links to "
            f"{MILLION_LABELS['unique_images']:,} JPEGs)", "peak < 1.5 GB at 1M labels",
            f"peak {m['peak_rss_mb']:,} MB; {m['import_s']} s = {m['images_per_s']:,} images/s, CPU {m['import_cpu_s']} s")
    if sc:
        n = f"{sc['samples'] // 1000:,}k samples / {sc['labels'] // 1_000_000}M labels"
        row(f"per-class counts, {n}", "< 200 ms", f"{sc['stats_per_class_ms']} ms (stored with the version)")
        row(f"filtered sample count (`{'label.class == car and label.area < 1024'}`)", "< 200 ms", f"{sc['filtered_count_ms']} ms")
        if "filtered_count_repeat_ms" in sc:
            row("same count again in the same process (the filter's match is kept)", "—",
                f"{sc['filtered_count_repeat_ms']} ms")
        row("filtered stats (per-class counts under that filter)", "< 200 ms", f"{sc['filtered_stats_ms']} ms")
        row("page of 100 samples + labels, label filter", "< 50 ms", f"{sc['page_100_label_filter_ms']} ms")
        row("page of 100 samples + labels, sample filter", "< 50 ms", f"{sc['page_100_sample_filter_ms']} ms")
        row("query cache build (once per version, first query)", "—", f"{sc['query_cache_build_s']} s")
        row(f"commit of an edit of 1% of labels ({sc['commit_1pct_labels']:,})", "< 3 s", f"{sc['commit_1pct_s']} s")
        row("storage growth of that commit", "∝ edit", f"{sc['storage_growth_mb']} MB on {sc['storage_before_mb']} MB")
        row("diff between the two versions", "< 2 s", f"{sc['diff_s']} s ({sc['diff_labels']['changed']:,} changed)")
        row("diff between branches (no ancestry: full join)", "—", f"{sc['diff_full_join_s']} s")
        row("bulk load of the scale dataset (one commit)", "—", f"{sc['bulk_commit_s']} s")
    lines += ["", "Raw figures: `" + json.dumps(results, sort_keys=True) + "`", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--samples", type=int, default=1_000_000, help="0 skips the scale part")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the run folder")
    ap.add_argument("--sources", type=Path, default=None,
                    help="a folder with coco10000/, coco100000/, coco1mlabels/ from generate.py to import instead "
                         "of generating them in this run (writing 2 GB of images just before the "
                         "import slows this machine's file system for minutes)")
    ap.add_argument("--million-labels", action=argparse.BooleanOptionalAction, default=True,
                    help="import ~1M labels for the peak-memory target (default on)")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    out = args.out or HERE / "out" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    results: dict = {}
    try:
        for n in args.images:
            bench_import_export(out, n, results, args.sources)
        if args.million_labels:
            bench_million_labels(out, results, args.sources)
        if args.samples:
            bench_scale(out, args.samples, results)
    finally:
        text = write_results(results, args)
        print(text)
        if not args.no_write and results:
            with open(HERE / "RESULTS.md", "a") as f:
                f.write("\n" + text)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
