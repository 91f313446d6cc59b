#!/usr/bin/env python3
"""Write a synthetic COCO detection dataset for benchmarks.

Layout written under OUT (which must be missing or empty):

    OUT/images/train/00000000.jpg ...      real JPEGs, one file per sample
    OUT/images/val/00000009.jpg ...        about --val-fraction of the samples
    OUT/annotations/instances_train.json   standard COCO (categories, images, annotations)
    OUT/annotations/instances_val.json

Each image has a noisy background and one filled rectangle or ellipse per box, so every
box is a drawn shape (later shapes may hide parts of earlier ones). The class decides the
shape kind and the base colour. Everything is derived from --seed, per block of
CHUNK samples, so the output does not depend on --workers.

Rendering runs in a process pool; the JSON files are streamed record by record from a
thread of the main process, so a 1M-image / 4.5M-box set needs little memory.

Only the standard library, numpy and Pillow are used (no viewfinder imports).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = ["car", "person", "bicycle", "dog", "cat", "truck", "bus", "bird", "boat", "sign"]
SUPERCATEGORIES = {
    "car": "vehicle", "truck": "vehicle", "bus": "vehicle", "bicycle": "vehicle",
    "boat": "vehicle", "person": "person", "dog": "animal", "cat": "animal",
    "bird": "animal", "sign": "outdoor",
}
CHUNK = 512  # samples per random block and per pool task; part of the seed contract
NOISE_POOL = 8  # noise fields pre-computed per worker
NOISE_MARGIN = 32  # the noise fields are larger than the image, sliced at a random offset
MILLION = 1_000_000


@dataclass(frozen=True)
class Config:
    out: Path
    images: int
    classes: int
    min_boxes: int
    max_boxes: int
    width: int
    height: int
    unique: int  # number of samples actually rendered; the rest are hard links
    seed: int
    workers: int
    val_ppm: int  # val fraction in parts per million
    quality: int


# ---------------------------------------------------------------------------------------
# Deterministic random content, one block of CHUNK samples at a time
# ---------------------------------------------------------------------------------------
@dataclass
class Block:
    start: int  # first sample index
    n_boxes: np.ndarray  # (n,) boxes per sample
    offsets: np.ndarray  # (n+1,) start of each sample's boxes in the box arrays
    cls: np.ndarray  # (m,) class index 0..classes-1
    xywh: np.ndarray  # (m, 4) integer pixel boxes
    color_jitter: np.ndarray  # (m, 3)
    background: np.ndarray  # (n, 3) background colour
    noise_id: np.ndarray  # (n,)
    noise_off: np.ndarray  # (n, 2)


def make_block(cfg: Config, chunk_id: int) -> Block:
    start = chunk_id * CHUNK
    n = min(CHUNK, cfg.images - start)
    rng = np.random.default_rng([cfg.seed, chunk_id])
    n_boxes = rng.integers(cfg.min_boxes, cfg.max_boxes + 1, size=n)
    m = int(n_boxes.sum())
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_boxes, out=offsets[1:])
    W, H = cfg.width, cfg.height
    w = rng.integers(max(4, W // 10), max(5, W * 45 // 100) + 1, size=m)
    h = rng.integers(max(4, H // 10), max(5, H * 45 // 100) + 1, size=m)
    w = np.minimum(w, W)
    h = np.minimum(h, H)
    x = (rng.random(m) * (W - w + 1)).astype(np.int64)
    y = (rng.random(m) * (H - h + 1)).astype(np.int64)
    return Block(
        start=start,
        n_boxes=n_boxes,
        offsets=offsets,
        cls=rng.integers(0, cfg.classes, size=m),
        xywh=np.stack([x, y, w, h], axis=1),
        color_jitter=rng.integers(-30, 31, size=(m, 3)),
        background=rng.integers(40, 216, size=(n, 3)),
        noise_id=rng.integers(0, NOISE_POOL, size=n),
        noise_off=rng.integers(0, NOISE_MARGIN, size=(n, 2)),
    )


def class_color(k: int) -> np.ndarray:
    """A saturated base colour per class (spread around the hue circle)."""
    hue = (k * 0.61803398875) % 1.0
    rgb = np.array(
        [abs(((hue * 6 + s) % 6) - 3) - 1 for s in (0, 4, 2)], dtype=np.float64
    ).clip(0, 1)
    return (40 + rgb * 200).astype(np.int64)


def is_val(cfg: Config, idx: np.ndarray) -> np.ndarray:
    """Exactly floor(N * fraction) samples, evenly spread, go to the val split."""
    return (idx + 1) * cfg.val_ppm // MILLION > idx * cfg.val_ppm // MILLION


def image_path(cfg: Config, idx: int, val: bool) -> Path:
    return cfg.out / "images" / ("val" if val else "train") / f"{idx:08d}.jpg"


# ---------------------------------------------------------------------------------------
# Worker side: render or hard-link one block
# ---------------------------------------------------------------------------------------
_noise: np.ndarray | None = None
_colors: np.ndarray | None = None
_cfg: Config | None = None


def _init_worker(cfg: Config) -> None:
    global _noise, _colors, _cfg
    _cfg = cfg
    _colors = np.stack([class_color(k) for k in range(cfg.classes)])
    rng = np.random.default_rng([cfg.seed, 0xB0B])
    shape = (NOISE_POOL, cfg.height + NOISE_MARGIN, cfg.width + NOISE_MARGIN, 3)
    # Fine noise on top of blotchy low-frequency noise: looks like texture, compresses
    # roughly like a photo.
    fine = rng.normal(0, 10, size=shape)
    coarse = rng.normal(0, 25, size=(NOISE_POOL, shape[1] // 16 + 1, shape[2] // 16 + 1, 3))
    coarse = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)[:, : shape[1], : shape[2]]
    _noise = (fine + coarse).clip(-90, 90).astype(np.int16)


def _render_chunk(chunk_id: int) -> tuple[int, int]:
    """Render every sample of a block; returns (samples, bytes written)."""
    cfg, noise, colors = _cfg, _noise, _colors
    assert cfg is not None and noise is not None and colors is not None
    b = make_block(cfg, chunk_id)
    n = len(b.n_boxes)
    n = max(0, min(n, cfg.unique - b.start))  # only the first `unique` samples are rendered
    idxs = np.arange(b.start, b.start + n)
    val = is_val(cfg, idxs)
    W, H = cfg.width, cfg.height
    cls = b.cls.tolist()
    xywh = b.xywh.tolist()
    box_colors = (colors[b.cls] + b.color_jitter).clip(0, 255).tolist()
    written = 0
    for i in range(n):
        ox, oy = b.noise_off[i]
        field = noise[b.noise_id[i], oy : oy + H, ox : ox + W]
        pixels = (field + b.background[i].astype(np.int16)).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(pixels, "RGB")
        draw = ImageDraw.Draw(img)
        for j in range(b.offsets[i], b.offsets[i + 1]):
            k = cls[j]
            x, y, w, h = xywh[j]
            color = tuple(box_colors[j])
            corners = (x, y, x + w - 1, y + h - 1)  # inclusive: the box is exactly w x h px
            if k % 2 == 0:
                draw.rectangle(corners, fill=color)
            else:
                draw.ellipse(corners, fill=color)
        path = image_path(cfg, int(idxs[i]), bool(val[i]))
        img.save(path, "JPEG", quality=cfg.quality)
        written += path.stat().st_size
    return n, written


def _link_chunk(chunk_id: int) -> tuple[int, int]:
    """Hard-link the samples of a block that are not rendered to rendered ones."""
    cfg = _cfg
    assert cfg is not None
    start = max(chunk_id * CHUNK, cfg.unique)
    stop = min((chunk_id + 1) * CHUNK, cfg.images)
    if start >= stop:
        return 0, 0
    idxs = np.arange(start, stop)
    srcs = idxs % cfg.unique
    val = is_val(cfg, idxs)
    src_val = is_val(cfg, srcs)
    size_cache: dict[int, int] = {}
    logical = 0
    for idx, src, v, sv in zip(idxs.tolist(), srcs.tolist(), val.tolist(), src_val.tolist()):
        src_path = image_path(cfg, src, sv)
        os.link(src_path, image_path(cfg, idx, v))
        if src not in size_cache:
            size_cache[src] = src_path.stat().st_size
        logical += size_cache[src]
    return stop - start, logical


# ---------------------------------------------------------------------------------------
# Main-process side: streamed COCO JSON
# ---------------------------------------------------------------------------------------
class CocoWriter:
    """Writes one split's COCO file record by record.

    Images go straight to the file; annotations go to a side file that is appended
    when the images are done, so both arrays are streamed in one pass.
    """

    def __init__(self, path: Path, categories: list[dict]) -> None:
        self.path = path
        self.ann_path = path.with_name(path.name + ".annotations.tmp")
        self.f = open(path, "w", encoding="utf-8", buffering=1 << 20)
        self.ann = open(self.ann_path, "w", encoding="utf-8", buffering=1 << 20)
        info = {"description": "Viewfinder synthetic benchmark dataset", "version": "1.0"}
        self.f.write('{"info":' + json.dumps(info) + ',"licenses":[],"categories":[')
        self.f.write(",".join(json.dumps(c, separators=(",", ":")) for c in categories))
        self.f.write('],"images":[')
        self.n_images = 0
        self.n_annotations = 0

    def add_image(self, image_id: int, file_name: str, width: int, height: int) -> None:
        # Only numbers and a fixed-pattern file name: f-strings are valid JSON here and
        # several times faster than json.dumps for millions of records.
        sep = "," if self.n_images else ""
        self.f.write(
            f'{sep}\n{{"id":{image_id},"file_name":"{file_name}",'
            f'"width":{width},"height":{height}}}'
        )
        self.n_images += 1

    def add_annotation(self, ann_id: int, image_id: int, category_id: int,
                       x: int, y: int, w: int, h: int) -> None:
        sep = "," if self.n_annotations else ""
        self.ann.write(
            f'{sep}\n{{"id":{ann_id},"image_id":{image_id},"category_id":{category_id},'
            f'"bbox":[{x}.0,{y}.0,{w}.0,{h}.0],"area":{w * h}.0,"iscrowd":0,'
            f'"segmentation":[]}}'
        )
        self.n_annotations += 1

    def close(self) -> None:
        self.ann.close()
        self.f.write('\n],"annotations":[')
        with open(self.ann_path, encoding="utf-8") as ann:
            shutil.copyfileobj(ann, self.f, 1 << 20)
        self.f.write("\n]}\n")
        self.f.close()
        self.ann_path.unlink()


def write_annotations(cfg: Config, result: dict) -> None:
    categories = [
        {"id": k + 1, "name": name, "supercategory": SUPERCATEGORIES.get(name, "object")}
        for k, name in enumerate(class_names(cfg.classes))
    ]
    ann_dir = cfg.out / "annotations"
    writers = {
        False: CocoWriter(ann_dir / "instances_train.json", categories),
        True: CocoWriter(ann_dir / "instances_val.json", categories),
    }
    ann_id = 0
    for chunk_id in range(n_chunks(cfg)):
        b = make_block(cfg, chunk_id)
        idxs = np.arange(b.start, b.start + len(b.n_boxes))
        val = is_val(cfg, idxs).tolist()
        xywh = b.xywh.tolist()
        cls = b.cls.tolist()
        offsets = b.offsets.tolist()
        for i, idx in enumerate(idxs.tolist()):
            writer = writers[val[i]]
            writer.add_image(idx + 1, f"{idx:08d}.jpg", cfg.width, cfg.height)
            for j in range(offsets[i], offsets[i + 1]):
                ann_id += 1
                x, y, w, h = xywh[j]
                writer.add_annotation(ann_id, idx + 1, cls[j] + 1, x, y, w, h)
    for writer in writers.values():
        writer.close()
    result["annotations"] = ann_id
    result["train"] = writers[False].n_images
    result["val"] = writers[True].n_images
    result["json_bytes"] = sum(w.path.stat().st_size for w in writers.values())


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------
def class_names(n: int) -> list[str]:
    return [CLASS_NAMES[k] if k < len(CLASS_NAMES) else f"class{k}" for k in range(n)]


def n_chunks(cfg: Config) -> int:
    return (cfg.images + CHUNK - 1) // CHUNK


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError("images must be at least 16x16")
    return w, h


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(
        prog="generate.py",
        description="Write a synthetic COCO detection dataset (real JPEGs, one drawn "
        "rectangle or ellipse per box) for Viewfinder benchmarks.",
        epilog="Write every run to a fresh folder and delete it at the end (see "
        "bench/README.md).",
    )
    p.add_argument("out", type=Path, help="output folder (must be missing or empty)")
    p.add_argument("--images", type=int, required=True, help="number of samples (train+val)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    p.add_argument("--min-boxes", type=int, default=1, help="boxes per image, at least (default 1)")
    p.add_argument("--max-boxes", type=int, default=8, help="boxes per image, at most (default 8)")
    p.add_argument("--size", type=parse_size, default=(320, 240), metavar="WxH",
                   help="image size (default 320x240)")
    p.add_argument("--unique-images", type=int, default=None, metavar="K",
                   help="render only K distinct images and write the other samples as "
                   "hard links to them (same bytes, each sample its own file name); for "
                   "1M-scale sets. The boxes stay random per sample, so for linked "
                   "samples they do NOT match the pixels.")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of samples in the val split (default 0.1)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, default=2,
                   help="rendering processes (default 2; 0 renders in this process)")
    a = p.parse_args(argv)
    if a.images < 1:
        p.error("--images must be at least 1")
    if not 1 <= a.classes:
        p.error("--classes must be at least 1")
    if not 0 <= a.min_boxes <= a.max_boxes:
        p.error("need 0 <= --min-boxes <= --max-boxes")
    unique = a.images if a.unique_images is None else a.unique_images
    if not 1 <= unique <= a.images:
        p.error("--unique-images must be between 1 and --images")
    if not 0 <= a.val_fraction < 1:
        p.error("--val-fraction must be in [0, 1)")
    if a.out.exists() and (not a.out.is_dir() or any(a.out.iterdir())):
        p.error(f"{a.out} exists and is not an empty folder; write each run to a fresh one")
    return Config(
        out=a.out, images=a.images, classes=a.classes, min_boxes=a.min_boxes,
        max_boxes=a.max_boxes, width=a.size[0], height=a.size[1], unique=unique,
        seed=a.seed, workers=max(0, a.workers), val_ppm=round(a.val_fraction * MILLION),
        quality=a.quality,
    )


class Progress:
    """Prints 'generate: 35% (3500/10000 samples, 12.3 s)' every 5% to stderr."""

    def __init__(self, total: int, t0: float) -> None:
        self.total, self.t0, self.done, self.next_pct = total, t0, 0, 5

    def add(self, n: int) -> None:
        self.done += n
        pct = self.done * 100 // self.total
        if pct >= self.next_pct:
            print(f"generate: {pct:3d}% ({self.done}/{self.total} samples, "
                  f"{time.perf_counter() - self.t0:.1f} s)", file=sys.stderr, flush=True)
            self.next_pct = (pct // 5 + 1) * 5


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    t0 = time.perf_counter()
    for sub in ("images/train", "images/val", "annotations"):
        (cfg.out / sub).mkdir(parents=True, exist_ok=True)

    # The pool is forked first: forking while another thread runs can copy a held lock
    # (e.g. the import lock) into the workers and hang them.
    if cfg.workers > 0:
        pool = mp.get_context("fork").Pool(cfg.workers, _init_worker, (cfg,))
    else:
        pool = None
        _init_worker(cfg)

    # The JSON is written by a thread of this process while the pool renders.
    json_result: dict = {}
    json_error: list[BaseException] = []

    def json_job() -> None:
        try:
            write_annotations(cfg, json_result)
        except BaseException as exc:  # re-raised in the main thread below
            json_error.append(exc)

    json_thread = threading.Thread(target=json_job, name="coco-json", daemon=True)
    json_thread.start()

    progress = Progress(cfg.images, t0)
    unique_bytes = logical_bytes = 0
    render_chunks = range((cfg.unique + CHUNK - 1) // CHUNK)
    link_chunks = range(cfg.unique // CHUNK, n_chunks(cfg)) if cfg.unique < cfg.images else range(0)
    with pool if pool is not None else contextlib.nullcontext():
        run = pool.imap_unordered if pool is not None else map
        for n, size in run(_render_chunk, render_chunks):
            unique_bytes += size
            progress.add(n)
        # Links only after every image they point to exists.
        for n, size in run(_link_chunk, link_chunks):
            logical_bytes += size
            progress.add(n)
    json_thread.join()
    if json_error:
        raise json_error[0]

    seconds = time.perf_counter() - t0
    logical_bytes += unique_bytes
    links = cfg.images - cfg.unique
    print(
        f"generated {cfg.images} images (train {json_result['train']}, val "
        f"{json_result['val']}; {cfg.unique} rendered, {links} hard links), "
        f"{json_result['annotations']} annotations, {logical_bytes} bytes of JPEG "
        f"({unique_bytes} on disk), {json_result['json_bytes']} bytes of JSON, "
        f"in {seconds:.1f} s ({cfg.images / seconds:.0f} images/s) -> {cfg.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
