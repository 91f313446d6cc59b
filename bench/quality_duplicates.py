#!/usr/bin/env python3
"""Duplicate and corruption benchmark with ground truth: precision and recall.

    .venv/bin/python bench/quality_duplicates.py [--bases 2000] [--seed 0] [--keep]

Writes into a fresh folder under /tmp (deleted at the end unless --keep):

- **bases**: distinct, natural-looking images: tiles of scikit-learn's two bundled photos
  (``load_sample_images``: non-overlapping tiles, each also mirrored) and procedural scenes
  (sky gradient, ground, textured shapes, blur), 256–400 px, JPEG quality 90;
- **exact copies** (same bytes under another name) of 5 % of the bases;
- **near-duplicates** of 20 % of the bases, one transformation each, in turn: JPEG re-encode
  at quality 50–95, resize 50–150 %, crop of up to 10 % per side pair, brightness ±20 %;
- **cross-split copies**: every copy lands in ``val`` or ``test`` while most bases are in
  ``train`` (the leakage case), some stay in the base's split;
- **corrupt files**: truncated JPEGs (20–90 % kept, some with a forged end marker), random
  bytes, a PNG cut short. Import refuses files without an end marker, so these are put
  straight into the blob store (bit rot after import) and scanned with
  :func:`viewfinder.quality.imagescan.scan_hashes`.

The dataset is imported as an image folder, scanned (``imagescan.scan``), embedded with the
built-in provider (``embeddings.store.compute``) and grouped by the primitives
(``neighbors.phash_groups`` / ``neighbors.embedding_groups``). Pairs are counted between
distinct images (content hashes) and recovered from groups (every pair inside a group).

**What the near-duplicate detector should use** (measured here, see bench/RESULTS.md):
the built-in embedding, ``neighbors.embedding_pairs(vectors, 0.06, k=10)``
(:data:`EMBEDDING_MAX_DISTANCE`; P 0.997 / R 0.987 alone on 2,000 bases), united with
perceptual-hash pairs ``neighbors.phash_pairs(values, 4)`` (:data:`PHASH_MAX_DISTANCE`;
the union keeps P 0.995 / R 0.987, and the hash catches brightened over-exposed photos,
whose washed-out colour moves the embedding). Hash distances of 8–10 bits pair too many
distinct images with a similar coarse layout (P 0.93 at 8, 0.80 at 10). Exact duplicates:
equal ``content_hash``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from run import machine  # noqa: E402  (one machine description for every benchmark)

PHASH_MAX_DISTANCE = 4
EMBEDDING_MAX_DISTANCE = 0.06
TRANSFORMS = ("jpeg", "resize", "crop", "brightness")
SPLITS = ("train", "val", "test")


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# -- ground truth ---------------------------------------------------------------------------


def photo_tiles() -> list[Image.Image]:
    """Non-overlapping tiles of scikit-learn's two sample photos, and their mirror images."""
    from sklearn.datasets import load_sample_images

    tiles = []
    for arr in load_sample_images().images:
        im = Image.fromarray(arr)
        w, h = im.size
        tw, th = w // 4, h // 3
        for r in range(3):
            for c in range(4):
                t = im.crop((c * tw, r * th, (c + 1) * tw, (r + 1) * th)).resize((tw * 2, th * 2),
                                                                                 Image.Resampling.BICUBIC)
                tiles += [t, t.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return tiles


def scene(rng: random.Random) -> Image.Image:
    """A procedural outdoor-ish scene: sky gradient, ground band, textured shapes."""
    w, h = rng.choice([(320, 240), (400, 300), (256, 256), (240, 320), (360, 240)])
    top = np.array([rng.randint(40, 200) for _ in range(3)], np.float32)
    bottom = np.array([rng.randint(40, 255) for _ in range(3)], np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = top * (1 - t) + bottom * t
    arr = np.broadcast_to(sky, (h, w, 3)).copy()
    horizon = rng.randint(h // 3, 4 * h // 5)
    arr[horizon:] = np.array([rng.randint(20, 160) for _ in range(3)], np.float32)
    nrng = np.random.default_rng(rng.randrange(2**32))
    noise = nrng.normal(0, rng.uniform(3, 18), (h // 4 + 1, w // 4 + 1, 1)).astype(np.float32)
    noise = np.kron(noise, np.ones((4, 4, 1), np.float32))[:h, :w]
    im = Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(rng.randint(3, 9)):
        x0, y0 = rng.randint(-w // 4, w), rng.randint(-h // 4, h)
        x1, y1 = x0 + rng.randint(w // 10, w // 2), y0 + rng.randint(h // 10, h // 2)
        fill = tuple(rng.randint(0, 255) for _ in range(3))
        kind = rng.random()
        if kind < 0.4:
            d.ellipse([x0, y0, x1, y1], fill=fill)
        elif kind < 0.7:
            d.rectangle([x0, y0, x1, y1], fill=fill)
        else:
            pts = [(rng.randint(x0, x1), rng.randint(y0, y1)) for _ in range(rng.randint(3, 6))]
            d.polygon(pts, fill=fill)
    return im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))


def jpeg(im: Image.Image, quality: int = 90) -> bytes:
    b = io.BytesIO()
    im.convert("RGB").save(b, "JPEG", quality=quality)
    return b.getvalue()


def transform(im: Image.Image, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """One near-duplicate transformation at the issue's ranges; (JPEG bytes, description)."""
    w, h = im.size
    if kind == "jpeg":
        q = rng.randint(50, 95)
        return jpeg(im, q), f"jpeg q={q}"
    if kind == "resize":
        f = rng.uniform(0.5, 1.5)
        return jpeg(im.resize((max(8, round(w * f)), max(8, round(h * f))), Image.Resampling.LANCZOS)), \
            f"resize {f:.2f}"
    if kind == "crop":
        fw, fh = rng.uniform(0.9, 1.0), rng.uniform(0.9, 1.0)
        cw, ch = round(w * fw), round(h * fh)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        return jpeg(im.crop((x, y, x + cw, y + ch))), f"crop {fw:.2f}x{fh:.2f}"
    f = rng.choice([rng.uniform(0.8, 0.95), rng.uniform(1.05, 1.2)])
    return jpeg(ImageEnhance.Brightness(im).enhance(f)), f"brightness {f:.2f}"


def corrupt_files(good: list[bytes], rng: random.Random, n: int) -> list[tuple[bytes, str]]:
    out = []
    for k in range(n):
        data = rng.choice(good)
        kind = k % 5
        if kind in (0, 1):
            out.append((data[: int(len(data) * rng.uniform(0.2, 0.9))], "truncated"))
        elif kind == 2:
            out.append((data[: int(len(data) * rng.uniform(0.2, 0.9))] + b"\xff\xd9", "truncated+EOI"))
        elif kind == 3:
            out.append((bytes(rng.randrange(256) for _ in range(rng.randint(10, 5000))), "random bytes"))
        else:
            b = io.BytesIO()
            Image.new("RGB", (64, 64), (10, 200, 30)).save(b, "PNG")
            png = b.getvalue()
            out.append((png[: len(png) // 2], "png truncated"))
    return out


def build(folder: Path, n_bases: int, seed: int) -> dict:
    """Write the image folder ``folder/<split>/img/*.jpg``; return the ground truth."""
    rng = random.Random(seed)
    tiles = photo_tiles()
    bases: list[Image.Image] = tiles[: min(len(tiles), n_bases // 4)]
    while len(bases) < n_bases:
        bases.append(scene(rng))
    files: dict[str, bytes] = {}
    family: dict[str, int] = {}  # key -> base index
    how: dict[str, str] = {}
    base_split = {}
    for i, im in enumerate(bases):
        split = "train" if rng.random() < 0.8 else rng.choice(["val", "test"])
        base_split[i] = split
        key = f"{split}/img/base{i:05d}.jpg"
        files[key], family[key], how[key] = jpeg(im), i, "base"
    picks = rng.sample(range(n_bases), k=n_bases // 4)
    exact, near = picks[: n_bases // 20], picks[n_bases // 20:]
    for n, i in enumerate(exact):
        split = rng.choice([s for s in SPLITS if s != base_split[i]]) if n % 2 == 0 else base_split[i]
        key = f"{split}/img/copy{i:05d}.jpg"
        files[key], family[key], how[key] = files[f"{base_split[i]}/img/base{i:05d}.jpg"], i, "exact"
    for n, i in enumerate(near):
        kind = TRANSFORMS[n % len(TRANSFORMS)]
        split = rng.choice([s for s in SPLITS if s != base_split[i]]) if n % 2 == 0 else base_split[i]
        key = f"{split}/img/near{i:05d}.jpg"
        files[key], desc = transform(bases[i], kind, rng)
        family[key], how[key] = i, f"{kind}: {desc}"
    for key, data in files.items():
        p = folder / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    bad = corrupt_files([files[f"{base_split[i]}/img/base{i:05d}.jpg"] for i in range(20)], rng,
                        max(10, n_bases // 100))
    return {"files": files, "family": family, "how": how, "corrupt": bad}


# -- evaluation -------------------------------------------------------------------------------


def pairs_of(groups: list[list[int]]) -> set[tuple[int, int]]:
    out = set()
    for g in groups:
        for a in range(len(g)):
            for b in range(a + 1, len(g)):
                out.add((min(g[a], g[b]), max(g[a], g[b])))
    return out


def pr(pred: set, truth: set) -> tuple[float, float]:
    tp = len(pred & truth)
    return (tp / len(pred) if pred else 1.0), (tp / len(truth) if truth else 1.0)


def evaluate(truth: dict, hashes: list[str], phashes: np.ndarray, vectors: np.ndarray,
             phash_d: int, emb_d: float) -> dict:
    """Precision/recall of near-duplicate pairs between distinct images."""
    import hashlib

    from viewfinder.quality import neighbors

    fam_of_hash: dict[str, int] = {}
    split_of_hash: dict[str, set[str]] = {}
    kind_of_hash: dict[str, str] = {}
    for key, data in truth["files"].items():
        h = hashlib.sha256(data).hexdigest()
        fam_of_hash[h] = truth["family"][key]
        split_of_hash.setdefault(h, set()).add(key.split("/")[0])
        if truth["how"][key] not in ("base", "exact"):
            kind_of_hash[h] = truth["how"][key].split(":")[0]
    pos = {h: i for i, h in enumerate(hashes)}
    by_fam: dict[int, list[int]] = {}
    for h, f in fam_of_hash.items():
        if h in pos:
            by_fam.setdefault(f, []).append(pos[h])
    truth_pairs = pairs_of(list(by_fam.values()))

    t = time.perf_counter()
    ph_groups = neighbors.phash_groups(phashes, phash_d)
    t_ph = time.perf_counter() - t
    t = time.perf_counter()
    em_groups = neighbors.embedding_groups(vectors, emb_d)
    t_em = time.perf_counter() - t
    ph, em = pairs_of(ph_groups), pairs_of(em_groups)
    # the union: join pairs from both sources into groups
    both = np.array(sorted(ph | em), dtype=np.int64).reshape(-1, 2)
    union = pairs_of(neighbors.components(len(hashes), both[:, 0], both[:, 1]))
    res = {}
    for name, pred in (("phash", ph), ("embedding", em), ("union", union)):
        p, r = pr(pred, truth_pairs)
        per_kind = {}
        for kind in TRANSFORMS:
            tk = {(a, b) for a, b in truth_pairs
                  if kind in (kind_of_hash.get(hashes[a]), kind_of_hash.get(hashes[b]))}
            per_kind[kind] = round(pr(pred, tk)[1], 4)
        res[name] = {"precision": round(p, 4), "recall": round(r, 4), "recall_by_transform": per_kind,
                     "pairs": len(pred)}
    cross_truth = {(a, b) for a, b in truth_pairs
                   if split_of_hash[hashes[a]] != split_of_hash[hashes[b]]}
    res["leakage_recall"] = {n: round(pr(p_, cross_truth)[1], 4)
                             for n, p_ in (("phash", ph), ("embedding", em), ("union", union))}
    sweep = {}
    for pd in (4, 6, 8, 10):
        ph_d = pairs_of(neighbors.phash_groups(phashes, pd))
        for ed in (0.04, 0.05, 0.06, 0.08):
            em_d = pairs_of(neighbors.embedding_groups(vectors, ed))
            both_d = np.array(sorted(ph_d | em_d), dtype=np.int64).reshape(-1, 2)
            un = pairs_of(neighbors.components(len(hashes), both_d[:, 0], both_d[:, 1]))
            sweep[f"phash<={pd},emb<={ed}"] = [round(x, 4) for x in pr(un, truth_pairs)]
        sweep[f"phash<={pd} alone"] = [round(x, 4) for x in pr(ph_d, truth_pairs)]
    for ed in (0.04, 0.05, 0.06, 0.08):
        sweep[f"emb<={ed} alone"] = [round(x, 4)
                                     for x in pr(pairs_of(neighbors.embedding_groups(vectors, ed)), truth_pairs)]
    res["sweep_precision_recall"] = sweep
    res["truth_pairs"] = len(truth_pairs)
    res["cross_split_truth_pairs"] = len(cross_truth)
    res["grouping_s"] = {"phash": round(t_ph, 3), "embedding": round(t_em, 3)}
    return res


def run(args: argparse.Namespace) -> dict:
    import pyarrow.compute as pc

    from viewfinder.quality import imagescan
    from viewfinder.quality.context import QualityContext
    from viewfinder.quality.embeddings import get_provider, store
    from viewfinder.services import versions as vs
    from viewfinder.services.ingest import import_source
    from viewfinder.storage.workspace import init_workspace

    work = Path(tempfile.mkdtemp(prefix="vf-qdup-", dir="/tmp"))
    try:
        log(f"generating {args.bases} bases and their copies in {work}")
        truth = build(work / "src", args.bases, args.seed)
        inner = init_workspace(work / "ws")
        log(f"importing {len(truth['files'])} images")
        import_source(inner, work / "src", "dups", format="imagefolder")
        at = vs.resolve(inner, "dups")
        with QualityContext(inner, at) as ctx:
            t = time.perf_counter()
            stats = imagescan.scan(ctx)
            t_scan = time.perf_counter() - t
            t = time.perf_counter()
            hashes, vectors = store.compute(ctx, get_provider("builtin"))
            t_emb = time.perf_counter() - t
            ph_of = dict(zip(stats.column("content_hash").to_pylist(),
                             stats.column("phash").to_pylist(), strict=True))
            # exact duplicates: equal content hash among samples
            samples = ctx.sample_hashes
            keys = samples.column("key").to_pylist()
            chs = samples.column("content_hash").to_pylist()
        ok = stats.filter(stats["ok"]).num_rows
        phashes = np.array([ph_of[h] for h in hashes], dtype=np.int64)
        res = evaluate(truth, hashes, phashes, vectors, args.phash_distance, args.embedding_distance)
        # exact duplicates: samples sharing a content hash vs planted copies
        by_hash: dict[str, list[str]] = {}
        for k, h in zip(keys, chs, strict=True):
            by_hash.setdefault(h, []).append(k)
        pred_exact = set()
        for v in by_hash.values():
            pred_exact |= {(a, b) for a in v for b in v if a < b}
        # truth: members of one family with the same bytes (planted copies, and a re-encode
        # that happened to reproduce the base's bytes)
        members: dict[tuple[int, bytes], list[str]] = {}
        for key, data in truth["files"].items():
            members.setdefault((truth["family"][key], data), []).append(key)
        truth_exact = {(a, b) for v in members.values() for a in v for b in v if a < b}
        pe, re_ = pr(pred_exact, truth_exact)
        res["exact"] = {"precision": round(pe, 4), "recall": round(re_, 4), "pairs": len(truth_exact)}
        # corrupt files: put into the blob store as bit rot, scan them with the rest
        import hashlib

        bad_hashes = []
        for data, _ in truth["corrupt"]:
            h = hashlib.sha256(data).hexdigest()
            inner.blobs.put_bytes(data, h)
            bad_hashes.append(h)
        t = time.perf_counter()
        scanned = imagescan.scan_hashes(inner, bad_hashes + chs[:200])
        flagged = set(scanned.filter(pc.invert(scanned["ok"])).column("content_hash").to_pylist())
        kinds = {}
        for (data, kind), h in zip(truth["corrupt"], bad_hashes, strict=True):
            kinds.setdefault(kind, [0, 0])
            kinds[kind][0] += h in flagged
            kinds[kind][1] += 1
        false_alarms = len(flagged - set(bad_hashes))
        issue = [v for k, v in kinds.items() if k != "truncated+EOI"]
        res["corrupt"] = {"recall": round(sum(v[0] for v in kinds.values()) / len(bad_hashes), 4),
                          "recall_issue_cases": round(sum(a for a, _ in issue) / sum(b for _, b in issue), 4),
                          "by_kind": {k: f"{a}/{b}" for k, (a, b) in kinds.items()},
                          "false_alarms_on_good": false_alarms}
        res["images"] = len(truth["files"])
        res["distinct_images"] = len(hashes)
        res["scan_ok"] = ok
        res["scan_s"] = round(t_scan, 2)
        res["embed_s"] = round(t_emb, 2)
        res["thresholds"] = {"phash_max_distance": args.phash_distance,
                             "embedding_max_distance": args.embedding_distance}
        return res
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)




def write_results(res: dict, argv: list[str]) -> str:
    u, p, e = res["union"], res["phash"], res["embedding"]
    lines = [
        f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — duplicates and corrupt files (ground truth)\n",
        f"Machine: {machine()}",
        (f"Load average (1 min) at start / end: "
         f"{res['load_start']:.1f} / {os.getloadavg()[0]:.1f} (2 cores shared with other engineers' jobs)"),
        f"Command: `.venv/bin/python bench/quality_duplicates.py {' '.join(argv)}`".rstrip() + "\n",
        (f"{res['images']} images ({res['distinct_images']} distinct decodable), "
         f"{res['truth_pairs']} near/exact-duplicate pairs between distinct images, "
         f"{res['cross_split_truth_pairs']} of them across splits. Thresholds: phash <= "
         f"{res['thresholds']['phash_max_distance']} bits, builtin embedding cosine distance <= "
         f"{res['thresholds']['embedding_max_distance']}.\n"),
        "| figure | target | measured |",
        "|---|---|---|",
        (f"| exact duplicates (equal content hash) | P = R = 1.0 | P = {res['exact']['precision']}, "
         f"R = {res['exact']['recall']} ({res['exact']['pairs']} planted) |"),
        (f"| near-duplicates, phash + builtin embedding (union) | R >= 0.95 at P >= 0.95 | "
         f"P = {u['precision']}, R = {u['recall']} (by transform: {u['recall_by_transform']}) |"),
        (f"| near-duplicates, builtin embedding alone | — | P = {e['precision']}, R = {e['recall']} "
         f"({e['recall_by_transform']}) |"),
        (f"| near-duplicates, phash alone | — | P = {p['precision']}, R = {p['recall']} "
         f"({p['recall_by_transform']}) |"),
        (f"| cross-split leakage recall (union / embedding / phash) | >= 0.95 | "
         f"{res['leakage_recall']['union']} / {res['leakage_recall']['embedding']} / "
         f"{res['leakage_recall']['phash']} |"),
        (f"| corrupt/truncated files found (truncated without end marker, random bytes, PNG cut "
         f"short) | recall 1.0, no crash | {res['corrupt']['recall_issue_cases']} "
         f"({res['corrupt']['false_alarms_on_good']} false alarms on good files) |"),
        (f"| JPEG truncated *and* given a forged end marker (beyond the issue) | — | "
         f"{res['corrupt']['by_kind'].get('truncated+EOI', '0/0')} (libjpeg fills the rest silently) |"),
        "",
        ("Threshold sweep, (precision, recall) of near-duplicate pairs: "
         + "; ".join(f"{k}: {v[0]}/{v[1]}" for k, v in res["sweep_precision_recall"].items())),
        "",
        f"Raw figures: `{json.dumps(res, sort_keys=True)}`",
    ]
    text = "\n".join(lines) + "\n"
    with open(HERE / "RESULTS.md", "a") as f:
        f.write(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--phash-distance", type=int, default=PHASH_MAX_DISTANCE)
    ap.add_argument("--embedding-distance", type=float, default=EMBEDDING_MAX_DISTANCE)
    ap.add_argument("--keep", action="store_true", help="Keep the generated folder.")
    ap.add_argument("--no-results", action="store_true", help="Print only; do not append to RESULTS.md.")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]
    res = run(args)
    res["load_start"] = load_start
    print(json.dumps(res, indent=2, sort_keys=True))
    if not args.no_results:
        print(write_results(res, sys.argv[1:]))


if __name__ == "__main__":
    main()
