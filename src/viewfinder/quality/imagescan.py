"""The image scan: integrity, pixel statistics and a perceptual hash for every image.

One row per distinct image (``content_hash``) of a dataset version. Every image is decoded
to its end with Pillow's truncated-image tolerance off, so a truncated or corrupt file is
caught (``ok`` false, ``error`` says why) and never crashes the scan. JPEGs decode through
``draft()`` (the decoder's DCT scaling) to a long side of about 128–256 px, which still
reads the whole entropy-coded stream (the integrity check) at a fraction of the cost; the statistics
come from that reduced image with numpy.

Columns (:data:`SCHEMA`):

- ``ok``, ``error`` (a short code: ``truncated``, ``cannot identify image``, ``corrupt``,
  ``decompression bomb``, ``missing``), ``error_detail`` (the decoder's own message);
- ``format``, ``mode``, ``width``, ``height`` (after EXIF orientation, as the samples
  table), ``size_bytes``;
- ``brightness`` (mean luminance, 0..1), ``contrast`` (its standard deviation),
  ``dark_fraction`` / ``bright_fraction`` (share of pixels with luminance < 0.1 / > 0.9);
- ``blur``: variance of the Laplacian of the luminance (0..1 scale) at a fixed size of at
  most :data:`BLUR_SIDE` px on the long side; **low means blurry** (sharp photos: > 0.01,
  heavy blur: < 0.001);
- ``entropy``: Shannon entropy of the 256-bin luminance histogram in bits (0..8; a blank
  image is near 0: low information);
- ``colorfulness``: mean chroma, (|Cb − 128| + |Cr − 128|) / 255 over the pixels; ``is_grayscale``:
  the image carries no colour (mode ``L``/``1``/``I``/``F``, or colour channels equal up to
  compression noise, i.e. ``colorfulness`` < :data:`GRAYSCALE_COLORFULNESS`);
- ``phash``: 64-bit perceptual hash (DCT of a 32×32 luminance thumbnail, the 8×8 lowest
  frequencies against their median; the ``imagehash.phash`` construction) as int64, first
  bit the most significant. Re-encodes, resizes and brightness changes stay within 4 bits;
  crops move it further (``bench/quality_duplicates.py``: at <= 4 bits, precision 0.997,
  but crops of up to 10 % are found only a third of the time: pair it with embeddings).

Results are cached per image hash in the workspace-wide Lance table
``{store}/quality/image_stats.lance``, so scanning the next version of a dataset reads only
the images that are new; the scan is memoized on the :class:`QualityContext`.

Example:
    >>> from viewfinder.quality.context import QualityContext          # doctest: +SKIP
    >>> with QualityContext(ws, vs.resolve(ws, "street@main")) as ctx:  # doctest: +SKIP
    ...     stats = scan(ctx)
    >>> stats.filter(pc.invert(stats["ok"])).column("error")           # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from viewfinder.quality.context import QualityContext
    from viewfinder.storage.workspace import Workspace

log = logging.getLogger(__name__)

SCAN_VERSION = 1
"""Bumped whenever a statistic's definition changes; cached rows of older scans are redone."""

DECODE_SIDE = 128
"""JPEGs are DCT-scaled down (1/2, 1/4, 1/8) to the smallest size whose long side is still
>= this: 320×240 decodes at 160×120, 4000×3000 at 500×375. (Entropy decoding, which the
scaling cannot skip, is most of the cost: 1/4 instead of 1/2 saves about 15 %.)"""
BLUR_SIDE = 128
"""The blur statistic is measured at this long side, so it compares across image sizes."""
GRAYSCALE_COLORFULNESS = 0.01
MAX_PIXELS = 178_956_970  # Pillow's own bomb limit (2 × MAX_IMAGE_PIXELS), as at import
DARK_LEVEL, BRIGHT_LEVEL = 0.1 * 255, 0.9 * 255
CHUNK = 256

SCHEMA = pa.schema([
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("scan_version", pa.int32(), nullable=False),
    pa.field("ok", pa.bool_(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("error_detail", pa.string()),
    pa.field("format", pa.string()),
    pa.field("mode", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("size_bytes", pa.int64()),
    pa.field("brightness", pa.float32()),
    pa.field("contrast", pa.float32()),
    pa.field("dark_fraction", pa.float32()),
    pa.field("bright_fraction", pa.float32()),
    pa.field("blur", pa.float32()),
    pa.field("entropy", pa.float32()),
    pa.field("colorfulness", pa.float32()),
    pa.field("is_grayscale", pa.bool_()),
    pa.field("phash", pa.int64()),
])
_COLUMNS = SCHEMA.names
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_TRANSPOSED = frozenset({5, 6, 7, 8})


# -- one image (runs in worker processes: numpy and Pillow only) ----------------------------


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal-free DCT-II basis as scipy.fftpack.dct (type 2, no norm) computes it."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    return (2.0 * np.cos(np.pi * k * (2 * x + 1) / (2 * n))).astype(np.float64)


_DCT32 = _dct_matrix(32)


def _pixels(gray: Any) -> np.ndarray:
    """An 8-bit single-band image as a 2-D uint8 array (faster than ``np.asarray(image)``)."""
    w, h = gray.size
    return np.frombuffer(gray.tobytes(), dtype=np.uint8).reshape(h, w)


def phash_of(gray: Any) -> int:
    """The 64-bit perceptual hash of a grayscale PIL image, as a signed int64.

    The ``imagehash.phash`` construction: 32×32 Lanczos thumbnail, 2-D DCT, the 8×8 lowest
    frequencies compared with their median; bit 63 is the first coefficient.
    """
    from PIL import Image

    px = _pixels(gray.resize((32, 32), Image.Resampling.LANCZOS)).astype(np.float64)
    low = (_DCT32 @ px @ _DCT32.T)[:8, :8].ravel()
    ordered = np.sort(low)
    bits = low > (ordered[31] + ordered[32]) / 2  # the median of 64 values
    return int(np.packbits(bits).view(">i8")[0])


def _error_code(e: BaseException) -> str:
    text = str(e).lower()
    if "truncated" in text or "premature end" in text or "not enough data" in text:
        return "truncated"
    if "cannot identify" in text:
        return "cannot identify image"
    if "decompression bomb" in text:
        return "decompression bomb"
    return "corrupt"


def analyze(data: bytes) -> dict[str, Any]:
    """Decode one image's bytes fully and measure it; never raises for a bad image.

    Returns:
        A dict with the :data:`SCHEMA` columns except ``content_hash`` and ``scan_version``.
    """
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    row: dict[str, Any] = {"ok": False, "error": None, "error_detail": None, "size_bytes": len(data)}
    try:
        with warnings.catch_warnings():
            # the limit is MAX_PIXELS, as at import (Pillow itself refuses beyond it)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            row.update(format=im.format, mode=im.mode)
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ValueError(f"decompression bomb refused: {w}x{h} pixels exceeds {MAX_PIXELS}")
            orientation = 1
            if "exif" in im.info:
                try:
                    orientation = int(im.getexif().get(0x0112, 1))
                except Exception:  # noqa: BLE001 - broken EXIF block: the pixels still count
                    orientation = 1
            row["width"], row["height"] = (h, w) if orientation in _TRANSPOSED else (w, h)
            if im.format in ("JPEG", "MPO"):
                scale = max(w, h) / DECODE_SIDE
                size = (max(1, int(w / scale)), max(1, int(h / scale))) if scale > 1 else None
                im.draft("YCbCr" if im.mode == "RGB" else None, size)
            im.load()  # decodes the whole stream: raises on a truncated or corrupt file
            if im.format in ("JPEG", "MPO") and not data.rstrip(b"\x00\r\n").endswith(b"\xff\xd9"):
                raise OSError("image file is truncated (no JPEG end marker)")
            row.update(_pixel_stats(im))
            row["ok"] = True
    except Image.DecompressionBombError as e:
        row.update(error="decompression bomb", error_detail=str(e))
    except Image.UnidentifiedImageError as e:
        row.update(error="cannot identify image", error_detail=str(e))
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, MemoryError) as e:
        row.update(error=_error_code(e), error_detail=str(e) or type(e).__name__)
    return row


_LEVELS = np.arange(256, dtype=np.float64)
_CHROMA_OFFSET = np.abs(_LEVELS - 128.0)


def _pixel_stats(im: Any) -> dict[str, Any]:
    """Statistics of a loaded image, from its luminance (and chroma) histograms, which
    Pillow computes in C, and a small grayscale copy for blur and the hash."""
    from PIL import Image

    gray_mode = im.mode in _GRAY_MODES
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # high bit depth: stretch to 8 bits
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        im = Image.fromarray(((a - lo) / (hi - lo or 1.0) * 255).astype(np.uint8))
    elif im.mode not in ("L", "YCbCr"):
        im = im.convert("L" if gray_mode else "RGB").convert("L" if gray_mode else "YCbCr")
    hist = np.asarray(im.histogram(), dtype=np.float64)
    if im.mode == "YCbCr":
        y_hist, cb_hist, cr_hist = hist[:256], hist[256:512], hist[512:]
        gray = im.getchannel(0)
    else:
        y_hist, cb_hist, cr_hist = hist, None, None
        gray = im
    n = float(y_hist.sum())
    colorfulness = 0.0 if cb_hist is None else \
        float(cb_hist @ _CHROMA_OFFSET + cr_hist @ _CHROMA_OFFSET) / n / 255.0
    p = y_hist[y_hist > 0] / n
    mean = float(y_hist @ _LEVELS) / n
    var = float(y_hist @ (_LEVELS - mean) ** 2) / n

    gw, gh = gray.size
    f = BLUR_SIDE / max(gw, gh)
    small = gray.resize((max(3, round(gw * f)), max(3, round(gh * f))), Image.Resampling.BOX) \
        if f < 1 else gray
    s = _pixels(small).astype(np.float32) * np.float32(1 / 255)
    blur = 0.0
    if s.shape[0] >= 3 and s.shape[1] >= 3:
        lap = (s[:-2, 1:-1] + s[2:, 1:-1] + s[1:-1, :-2] + s[1:-1, 2:]) - 4.0 * s[1:-1, 1:-1]
        blur = float(lap.var())
    return {
        "brightness": mean / 255.0,
        "contrast": float(np.sqrt(var)) / 255.0,
        "dark_fraction": float(y_hist[: int(np.ceil(DARK_LEVEL))].sum()) / n,
        "bright_fraction": float(y_hist[int(np.floor(BRIGHT_LEVEL)) + 1:].sum()) / n,
        "blur": blur,
        "entropy": float(-(p * np.log2(p)).sum()),
        "colorfulness": colorfulness,
        "is_grayscale": gray_mode or colorfulness < GRAYSCALE_COLORFULNESS,
        "phash": phash_of(gray),
    }


def scan_chunk(hashes: Sequence[str], store_root: str, storage_options: dict[str, Any],
               cache_dir: str | None) -> list[dict[str, Any]]:
    """Scan the images ``hashes`` of the blob store at ``store_root`` (a worker's unit)."""
    from pathlib import Path

    from viewfinder.errors import StorageError
    from viewfinder.storage.blobs import BlobStore

    blobs = BlobStore(store_root, storage_options, cache_dir=Path(cache_dir) if cache_dir else None)
    rows = []
    for h in hashes:
        try:
            if blobs.is_local:
                with open(blobs.local_path(h), "rb") as f:
                    data = f.read()
            else:
                data = blobs.read(h)
        except (StorageError, OSError) as e:
            rows.append({"content_hash": h, "ok": False, "error": "missing", "error_detail": str(e)})
            continue
        row = analyze(data)
        row["content_hash"] = h
        rows.append(row)
    return rows


# -- the version's images, cached -------------------------------------------------------------


def cache_uri(ws: Workspace) -> str:
    """The workspace-wide per-image cache table."""
    return f"{ws.store_url.rstrip('/')}/quality/image_stats.lance"


def _to_table(rows: list[dict[str, Any]]) -> pa.Table:
    cols = {c: [r.get(c) for r in rows] for c in _COLUMNS}
    cols["scan_version"] = [SCAN_VERSION] * len(rows)
    return pa.table(cols, schema=SCHEMA)


def _read_cache(ws: Workspace, hashes: list[str]) -> pa.Table:
    """Cached rows (of this scan version) for ``hashes``; an empty table if none."""
    import lance
    import pyarrow.compute as pc

    uri = cache_uri(ws)
    try:
        ds = lance.dataset(uri, storage_options=ws.lance_storage_options() or None)
    except (ValueError, FileNotFoundError, OSError):
        return SCHEMA.empty_table()
    wanted = pa.array(hashes, pa.string())
    if ds.count_rows() <= 4 * len(hashes) + 100_000:
        # a cache not much larger than the request: read its keys, take the matches
        keys = ds.to_table(columns=["content_hash", "scan_version"])
        mask = pc.and_(pc.is_in(keys["content_hash"], value_set=wanted),
                       pc.equal(keys["scan_version"], SCAN_VERSION))
        positions = pc.indices_nonzero(mask)
        if len(positions) == 0:
            return SCHEMA.empty_table()
        table = ds.take(positions.to_pylist(), columns=_COLUMNS)
    else:
        table = ds.to_table(columns=_COLUMNS, filter=pc.field("content_hash").isin(wanted)
                            & (pc.field("scan_version") == SCAN_VERSION))
    return table.cast(SCHEMA)


def _write_cache(ws: Workspace, table: pa.Table) -> None:
    """Append fresh rows to the cache; a failure costs a rescan later, never the scan.

    The rows are those the cache lacked a moment ago, so an append (cost: the new rows) is
    enough; two scans racing may both append an image, and readers keep its first row.
    """
    import lance

    if table.num_rows == 0:
        return
    uri = cache_uri(ws)
    opts = ws.lance_storage_options() or None
    try:
        try:
            lance.dataset(uri, storage_options=opts)
        except (ValueError, FileNotFoundError, OSError):
            try:
                lance.write_dataset(table, uri, schema=SCHEMA, mode="create", storage_options=opts)
                return
            except (OSError, ValueError, RuntimeError):
                pass  # another scan created it meanwhile: append below
        lance.write_dataset(table, uri, schema=SCHEMA, mode="append", storage_options=opts)
    except (OSError, ValueError, RuntimeError) as e:
        log.warning("image scan: could not cache %d results in %s: %s", table.num_rows, uri, e)


def _pool_context() -> BaseContext:
    """``fork`` while this process has one OS thread; ``forkserver`` once native thread
    pools (DuckDB, Lance) run, since forking those can deadlock the child."""
    try:
        single = len(os.listdir("/proc/self/task")) == 1
    except OSError:
        single = False
    if single:
        return get_context("fork")
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["viewfinder.quality.imagescan"])
    return ctx


def scan_hashes(ws: Workspace, hashes: Sequence[str], *, workers: int | None = None,
                progress: Any = None, use_cache: bool = True) -> pa.Table:
    """Scan the images ``hashes`` of the workspace's blob store (cache first).

    Args:
        ws: the open workspace.
        hashes: content hashes; duplicates are scanned once.
        workers: processes to use (default: the CPU count).
        progress: ``progress(stage, done, total)``.
        use_cache: read and fill the per-image cache table.

    Returns:
        One :data:`SCHEMA` row per distinct hash, in first-seen order.
    """
    order = list(dict.fromkeys(hashes))
    cached = _read_cache(ws, order) if use_cache and order else SCHEMA.empty_table()
    cached = _first_per_hash(cached)
    have = set(cached.column("content_hash").to_pylist())
    todo = [h for h in order if h not in have]
    total = len(todo)
    report = progress or (lambda stage, done, total: None)
    report("image scan", 0, total)
    rows: list[dict[str, Any]] = []
    store, opts = ws.store_url, ws.fsspec_storage_options()
    cache_dir = str(ws.path / "cache")
    n = workers or os.cpu_count() or 1
    if n > 1 and total >= 2 * CHUNK:
        chunk = max(64, min(CHUNK, total // (n * 4)))
        with ProcessPoolExecutor(max_workers=n, mp_context=_pool_context()) as pool:
            futures = [pool.submit(scan_chunk, todo[i:i + chunk], store, opts, cache_dir)
                       for i in range(0, total, chunk)]
            for fut in as_completed(futures):
                rows.extend(fut.result())
                report("image scan", len(rows), total)
    else:
        for i in range(0, total, 64):
            rows.extend(scan_chunk(todo[i:i + 64], store, opts, cache_dir))
            report("image scan", len(rows), total)
    fresh = _to_table(rows)
    if use_cache:
        _write_cache(ws, fresh)
    both = pa.concat_tables([cached, fresh]) if cached.num_rows else fresh
    index = {h: i for i, h in enumerate(both.column("content_hash").to_pylist())}
    return both.take([index[h] for h in order])


def _first_per_hash(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    seen: dict[str, int] = {}
    for i, h in enumerate(table.column("content_hash").to_pylist()):
        seen.setdefault(h, i)
    return table if len(seen) == table.num_rows else table.take(list(seen.values()))


def scan(ctx: QualityContext) -> pa.Table:
    """The image scan of the context's version: one :data:`SCHEMA` row per distinct image.

    Computed once per context; images scanned before (in any dataset of the workspace) come
    from the cache table.
    """

    def compute() -> pa.Table:
        hashes = ctx.sample_hashes.column("content_hash").to_pylist()
        return scan_hashes(ctx.ws, hashes, progress=ctx.progress)

    table: pa.Table = ctx.memo("image_stats", compute)
    return table
