#!/usr/bin/env python3
"""Speed of the data-quality primitives: image scan, hash grouping, embedding grouping.

    .venv/bin/python bench/quality_speed.py [--images 10000 [100000]] [--groups 100000]
                                            [--no-cleanvision]

For each ``--images`` count: generate that many 320×240 JPEGs (COCO, ``bench/generate.py``)
in a fresh folder under /tmp, import them with Viewfinder, then time
:func:`viewfinder.quality.imagescan.scan` cold (empty per-image cache: every image decoded
to its end, statistics and perceptual hash) and warm (a new context over the same version:
everything from the cache table).

Grouping, on ``--groups`` items: :func:`neighbors.phash_groups` over random 64-bit hashes
with planted near copies (<= 8 flipped bits), and :func:`neighbors.embedding_groups` over
vectors of the built-in embedding's length drawn from a low-rank model (as real image
embeddings are: a few dozen directions carry most of the variance) with planted near copies.

CleanVision 0.3.7 (the reference) runs side by side on the same 10k folder when it can be
installed into ``/tmp/cv-venv``; otherwise the issue's figure (59 s on this machine) is
quoted. Results are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

CLEANVISION_REFERENCE_S = 59.0
CV_VENV = Path("/tmp/cv-venv")
CV_SCRIPT = """
import sys, time
from cleanvision import Imagelab
t = time.perf_counter()
lab = Imagelab(data_path=sys.argv[1])
lab.find_issues()
print(f"CLEANVISION_SECONDS={time.perf_counter() - t:.2f}")
"""


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def bench_scan(work: Path, n: int) -> dict:
    from viewfinder.quality import imagescan
    from viewfinder.quality.context import QualityContext
    from viewfinder.services import versions as vs
    from viewfinder.services.ingest import import_source
    from viewfinder.storage.workspace import init_workspace

    src = work / f"coco{n}"
    log(f"generating {n} JPEGs in {src}")
    subprocess.run([sys.executable, str(HERE / "generate.py"), str(src), "--images", str(n)],
                   check=True, stdout=subprocess.DEVNULL)
    ws = init_workspace(work / f"ws{n}")
    log("importing")
    t = time.perf_counter()
    import_source(ws, src, "bench", format="coco")
    t_import = time.perf_counter() - t
    at = vs.resolve(ws, "bench")
    log("scanning (cold)")
    with QualityContext(ws, at) as ctx:
        _ = ctx.sample_hashes  # the version's listing is not part of the scan
        t = time.perf_counter()
        table = imagescan.scan(ctx)
        cold = time.perf_counter() - t
    log("scanning (warm: from the cache)")
    with QualityContext(ws, at) as ctx:
        _ = ctx.sample_hashes
        t = time.perf_counter()
        imagescan.scan(ctx)
        warm = time.perf_counter() - t
    ok = sum(table.column("ok").to_pylist())
    return {"images": n, "scan_cold_s": round(cold, 2), "images_per_s": round(n / cold),
            "scan_warm_s": round(warm, 2), "ok": ok, "import_s": round(t_import, 2),
            "folder": str(src / "images")}


def bench_cleanvision(folder: str) -> dict:
    if not (CV_VENV / "bin" / "python").exists():
        return {"ran": False, "why": f"{CV_VENV} does not exist (python3 -m venv {CV_VENV} && "
                                     f"{CV_VENV}/bin/pip install cleanvision==0.3.7)"}
    check = subprocess.run([str(CV_VENV / "bin" / "python"), "-c", "import cleanvision"],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        return {"ran": False, "why": "cleanvision is not importable in " + str(CV_VENV) + ": "
                                     + check.stderr.strip().splitlines()[-1][:200]}
    log("running CleanVision 0.3.7 on the same folder")
    t = time.perf_counter()
    r = subprocess.run([str(CV_VENV / "bin" / "python"), "-c", CV_SCRIPT, folder],
                       capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        return {"ran": False, "why": "cleanvision failed: " + r.stderr.strip()[-300:]}
    inner = next((float(line.split("=")[1]) for line in r.stdout.splitlines()
                  if line.startswith("CLEANVISION_SECONDS=")), wall)
    return {"ran": True, "seconds": round(inner, 2), "wall_s": round(wall, 2)}


def bench_groups(n: int, seed: int = 0) -> dict:
    from viewfinder.quality import neighbors
    from viewfinder.quality.embeddings.base import get_provider

    rng = np.random.default_rng(seed)
    planted = n // 100
    h = rng.integers(0, 2**63, size=n, dtype=np.int64).view(np.uint64) * np.uint64(2) \
        + rng.integers(0, 2, size=n).astype(np.uint64)
    for k in range(planted):
        flips = rng.choice(64, size=rng.integers(0, 9), replace=False)
        mask = np.uint64(sum(1 << int(f) for f in flips))
        h[n - 1 - k] = h[k] ^ mask
    t = time.perf_counter()
    groups = neighbors.phash_groups(h, 8)
    t_phash = time.perf_counter() - t
    members = {i for g in groups for i in g}
    phash_recall = sum(k in members and (n - 1 - k) in members for k in range(planted)) / planted

    dim = get_provider("builtin").dim
    latent = rng.standard_normal((n, 24)).astype(np.float32)
    basis = rng.standard_normal((24, dim)).astype(np.float32)
    v = latent @ basis + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    noise = rng.standard_normal((planted, dim)).astype(np.float32)
    v[n - planted:] = v[:planted][::-1] + 0.1 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    t = time.perf_counter()
    egroups = neighbors.embedding_groups(v, 0.06)
    t_emb = time.perf_counter() - t
    members = {i for g in egroups for i in g}
    emb_recall = sum(k in members and (n - 1 - k) in members for k in range(planted)) / planted
    return {"n": n, "phash_groups_s": round(t_phash, 2), "phash_groups": len(groups),
            "phash_planted_recall": round(phash_recall, 4), "embedding_groups_s": round(t_emb, 2),
            "embedding_dim": dim, "embedding_groups": len(egroups),
            "embedding_planted_recall": round(emb_recall, 4)}


def machine() -> str:
    from quality_duplicates import machine as describe

    return describe()


def write_results(res: dict, argv: list[str]) -> str:
    lines = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — quality primitives: speed\n",
             f"Machine: {machine()}",
             (f"Load average (1 min) at start / end: {res['load_start']:.1f} / "
              f"{os.getloadavg()[0]:.1f} (2 cores shared with other engineers' jobs)"),
        f"Command: `.venv/bin/python bench/quality_speed.py {' '.join(argv)}`".rstrip() + "\n",
             "| figure | target | measured |", "|---|---|---|"]
    cv = res.get("cleanvision", {})
    for s in res["scans"]:
        n = s["images"]
        if n == 10_000:
            ref = cv["seconds"] if cv.get("ran") else CLEANVISION_REFERENCE_S
            who = "CleanVision 0.3.7 measured here" if cv.get("ran") else "CleanVision 0.3.7, issue's figure"
            lines.append(f"| image scan 10k 320×240 JPEG, cold (integrity + stats + phash) | ≥ 10× "
                         f"CleanVision ({ref} s, {who}) → ≤ {ref / 10:.1f} s | {s['scan_cold_s']} s = "
                         f"{s['images_per_s']:,} images/s ({ref / s['scan_cold_s']:.1f}× CleanVision) |")
        else:
            lines.append(f"| image scan {n // 1000}k 320×240 JPEG, cold | ≥ 1,000 images/s | "
                         f"{s['scan_cold_s']} s = {s['images_per_s']:,} images/s |")
        lines.append(f"| image scan {n // 1000}k, warm (next version: all from the cache) | — | "
                     f"{s['scan_warm_s']} s |")
    g = res.get("groups")
    if g:
        lines.append(f"| near-duplicate grouping {g['n'] // 1000}k, perceptual hashes (<= 8 bits) | < 60 s | "
                     f"{g['phash_groups_s']} s (planted pairs found: {g['phash_planted_recall']}) |")
        lines.append(f"| near-duplicate grouping {g['n'] // 1000}k, {g['embedding_dim']}-d embeddings "
                     f"(cosine <= 0.06, k = 10; LSH range search, exact check) | < 60 s | {g['embedding_groups_s']} s (planted pairs "
                     f"found: {g['embedding_planted_recall']}) |")
    if not cv.get("ran"):
        lines.append(f"\nCleanVision did not run here: {cv.get('why', 'skipped (--no-cleanvision)')}.")
    lines += ["", f"Raw figures: `{json.dumps(res, sort_keys=True)}`"]
    text = "\n".join(lines) + "\n"
    with open(HERE / "RESULTS.md", "a") as f:
        f.write(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, nargs="*", default=[10_000])
    ap.add_argument("--groups", type=int, default=100_000, help="Items to group (0: skip).")
    ap.add_argument("--no-cleanvision", action="store_true")
    ap.add_argument("--no-results", action="store_true", help="Print only; do not append to RESULTS.md.")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vf-qspeed-", dir="/tmp"))
    res: dict = {"scans": [], "load_start": os.getloadavg()[0]}
    try:
        for n in args.images:
            s = bench_scan(work, n)
            res["scans"].append(s)
            log(json.dumps(s))
            if n == 10_000 and not args.no_cleanvision:
                res["cleanvision"] = bench_cleanvision(s["folder"])
                log(json.dumps(res["cleanvision"]))
        if args.groups:
            log(f"grouping {args.groups} hashes and vectors")
            res["groups"] = bench_groups(args.groups)
            log(json.dumps(res["groups"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for s in res["scans"]:
        s.pop("folder", None)
    print(json.dumps(res, indent=2, sort_keys=True))
    if not args.no_results:
        print(write_results(res, sys.argv[1:]))


if __name__ == "__main__":
    main()
