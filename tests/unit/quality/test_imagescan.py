"""The image scan: what a curator learns about each image, and that bad files never crash it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageFilter

import viewfinder.api as vf
from viewfinder.quality import imagescan, neighbors
from viewfinder.quality.context import QualityContext
from viewfinder.services import versions as vs
from viewfinder.services.ingest import import_source
from viewfinder.storage.workspace import Workspace


def _scene(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A textured, colourful picture (distinct per seed)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.stack([128 + 100 * np.sin(x / rng.uniform(5, 30) + rng.uniform(0, 6)),
                  128 + 100 * np.cos(y / rng.uniform(5, 30) + rng.uniform(0, 6)),
                  128 + 60 * np.sin((x + y) / rng.uniform(5, 30))], axis=2)
    a += rng.normal(0, 12, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _save(im: Image.Image, path: Path, fmt: str = "JPEG", **opts: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt, **opts)


@pytest.fixture
def sws(ws: vf.Workspace) -> Workspace:
    """The storage-level workspace the services and the quality layer take."""
    return ws._ws


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An image folder with one image per property the scan measures."""
    root = tmp_path / "src"
    _save(_scene(1), root / "cat" / "sharp.jpg", quality=92)
    _save(_scene(1).filter(ImageFilter.GaussianBlur(4)), root / "cat" / "blurry.jpg", quality=92)
    _save(Image.new("RGB", (160, 120), (6, 5, 7)), root / "cat" / "dark.jpg")
    _save(Image.new("RGB", (160, 120), (250, 250, 248)), root / "cat" / "bright.jpg")
    _save(_scene(2).convert("L").convert("RGB"), root / "cat" / "gray_rgb.jpg", quality=92)
    _save(_scene(3), root / "dog" / "photo.png", "PNG")
    _save(_scene(4), root / "dog" / "victim.jpg", quality=90)
    _save(_scene(5), root / "dog" / "garbled.jpg", quality=90)
    _save(_scene(6), root / "dog" / "original.jpg", quality=90)
    _save(_scene(6).resize((120, 90), Image.Resampling.LANCZOS), root / "dog" / "smaller_copy.jpg",
          quality=70)
    (root / "dog" / "same_bytes.jpg").write_bytes((root / "dog" / "original.jpg").read_bytes())
    return root


def _import(ws: Workspace, root: Path, name: str = "pets") -> vs.DatasetAt:
    import_source(ws, root, name, format="imagefolder")
    return vs.resolve(ws, name)


def _by_key(ctx: QualityContext, table: pa.Table) -> dict[str, dict]:
    rows = {r["content_hash"]: r for r in table.to_pylist()}
    return {s["key"]: rows[s["content_hash"]] for s in ctx.sample_hashes.to_pylist()}


def _rot(ws: Workspace, root: Path, key: str, data: bytes) -> None:
    """Bit rot after import: the stored blob's bytes change on disk."""
    from hashlib import sha256

    blob = Path(ws.blobs.local_path(sha256((root / key).read_bytes()).hexdigest()))
    os.chmod(blob, 0o644)
    blob.write_bytes(data)


def test_scan_measures_what_curators_filter_on(sws: Workspace, folder: Path) -> None:
    at = _import(sws, folder)
    with QualityContext(sws, at) as ctx:
        table = imagescan.scan(ctx)
        rows = _by_key(ctx, table)
    assert table.schema.equals(imagescan.SCHEMA)
    assert table.num_rows == 10  # 11 samples, one exact copy: one row per distinct image
    assert all(r["ok"] and r["error"] is None for r in rows.values())
    assert rows["cat/sharp.jpg"]["width"] == 160 and rows["cat/sharp.jpg"]["height"] == 120
    assert rows["dog/photo.png"]["format"] == "PNG" and rows["cat/sharp.jpg"]["format"] == "JPEG"

    dark, bright = rows["cat/dark.jpg"], rows["cat/bright.jpg"]
    assert dark["brightness"] < 0.05 and dark["dark_fraction"] > 0.99
    assert bright["brightness"] > 0.95 and bright["bright_fraction"] > 0.99
    assert 0.2 < rows["cat/sharp.jpg"]["brightness"] < 0.8
    # blank images carry no information; a textured photo carries a lot
    assert dark["entropy"] < 0.5 and rows["cat/sharp.jpg"]["entropy"] > 5
    assert rows["cat/sharp.jpg"]["contrast"] > 10 * dark["contrast"]
    # the same picture blurred is far less sharp
    assert rows["cat/blurry.jpg"]["blur"] < rows["cat/sharp.jpg"]["blur"] / 10
    assert rows["cat/gray_rgb.jpg"]["is_grayscale"] and rows["cat/gray_rgb.jpg"]["mode"] == "RGB"
    assert not rows["cat/sharp.jpg"]["is_grayscale"] and not rows["dog/photo.png"]["is_grayscale"]


def test_phash_matches_imagehash_and_finds_resized_copies(sws: Workspace, folder: Path) -> None:
    import imagehash

    at = _import(sws, folder)
    with QualityContext(sws, at) as ctx:
        rows = _by_key(ctx, imagescan.scan(ctx))

    def bits(a: int, b: int) -> int:
        return ((a ^ b) & (2**64 - 1)).bit_count()

    for key in ("cat/sharp.jpg", "dog/photo.png", "dog/original.jpg"):
        reference = int(str(imagehash.phash(Image.open(folder / key))), 16)
        assert bits(rows[key]["phash"], reference) <= 4, key
    original, smaller = rows["dog/original.jpg"]["phash"], rows["dog/smaller_copy.jpg"]["phash"]
    assert bits(original, smaller) <= 6
    assert bits(original, rows["cat/sharp.jpg"]["phash"]) > 16
    phashes = np.array([r["phash"] for r in rows.values()], dtype=np.int64)
    keys = list(rows)
    groups = [[keys[i] for i in g] for g in neighbors.phash_groups(phashes, 8)]
    assert ["dog/original.jpg", "dog/smaller_copy.jpg", "dog/same_bytes.jpg"] in groups or any(
        {"dog/original.jpg", "dog/smaller_copy.jpg"} <= set(g) for g in groups)


def test_bit_rot_after_import_is_reported_not_raised(sws: Workspace, folder: Path) -> None:
    at = _import(sws, folder)
    victim = (folder / "dog" / "victim.jpg").read_bytes()
    _rot(sws, folder, "dog/victim.jpg", victim[: len(victim) // 2])          # truncated
    _rot(sws, folder, "dog/garbled.jpg", bytes(range(256)) * 8)             # not an image
    with QualityContext(sws, at) as ctx:
        rows = _by_key(ctx, imagescan.scan(ctx))
    assert rows["dog/victim.jpg"]["ok"] is False and rows["dog/victim.jpg"]["error"] == "truncated"
    assert rows["dog/garbled.jpg"]["error"] == "cannot identify image"
    assert rows["dog/victim.jpg"]["width"] == 160  # the header still says what it was
    assert rows["dog/victim.jpg"]["brightness"] is None
    assert sum(not r["ok"] for r in rows.values()) == 2


def test_truncated_jpeg_with_intact_header_never_decodes_silently() -> None:
    buf = io.BytesIO()
    _scene(9, (320, 240)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    for keep in (0.3, 0.6, 0.95):
        row = imagescan.analyze(data[: int(len(data) * keep)])
        assert row["ok"] is False and row["error"] == "truncated", keep
    assert imagescan.analyze(b"")["error"] == "cannot identify image"
    assert imagescan.analyze(data)["ok"] is True


def test_rescan_reads_only_new_images_from_the_cache(sws: Workspace, folder: Path) -> None:
    at = _import(sws, folder)
    seen: list[tuple[str, int, int]] = []
    with QualityContext(sws, at, progress=lambda *a: seen.append(a)) as ctx:
        first = imagescan.scan(ctx)
        assert imagescan.scan(ctx) is first  # memoized on the context
    assert seen[-1] == ("image scan", 10, 10)
    # the cache answers now: a blob that rots afterwards still reads as it was scanned
    _rot(sws, folder, "dog/victim.jpg", b"rotten")
    _save(_scene(42), folder / "cat" / "new.jpg")
    seen.clear()
    at2 = _import(sws, folder)
    with QualityContext(sws, at2, progress=lambda *a: seen.append(a)) as ctx:
        second = _by_key(ctx, imagescan.scan(ctx))
    assert seen[-1] == ("image scan", 1, 1)  # only the new image was decoded
    assert second["dog/victim.jpg"]["ok"] is True and second["cat/new.jpg"]["ok"] is True
    assert Path(imagescan.cache_uri(sws)).is_dir()


def test_process_pool_gives_the_same_rows(sws: Workspace, folder: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    at = _import(sws, folder)
    with QualityContext(sws, at) as ctx:
        hashes = ctx.sample_hashes.column("content_hash").to_pylist()
    serial = imagescan.scan_hashes(sws, hashes, workers=1, use_cache=False)
    monkeypatch.setattr(imagescan, "CHUNK", 2)  # small chunks: the pool path on 10 images
    pooled = imagescan.scan_hashes(sws, hashes, workers=2, use_cache=False)
    assert pooled.equals(serial)


def test_scan_and_embeddings_on_every_backend(any_ws: vf.Workspace, folder: Path) -> None:
    """The same scan, cache and stored vectors with a PostgreSQL catalog and an S3 store."""
    import lance

    from viewfinder.quality.embeddings import get_provider, store

    w = any_ws._ws
    at = _import(w, folder)
    seen: list[tuple[str, int, int]] = []
    with QualityContext(w, at, progress=lambda *a: seen.append(a)) as ctx:
        rows = _by_key(ctx, imagescan.scan(ctx))
        hashes, vectors = store.compute(ctx, get_provider("builtin"))
    assert len(rows) == 11 and all(r["ok"] for r in rows.values())
    assert rows["cat/dark.jpg"]["brightness"] < 0.05
    assert ("image scan", 10, 10) in seen and ("embeddings", 10, 10) in seen
    assert len(hashes) == 10 and vectors.shape[0] == 10
    opts = w.lance_storage_options() or None
    assert lance.dataset(imagescan.cache_uri(w), storage_options=opts).count_rows() == 10
    seen.clear()
    with QualityContext(w, at, progress=lambda *a: seen.append(a)) as ctx:  # all cached now
        again = imagescan.scan(ctx)
        hashes2, vectors2 = store.compute(ctx, get_provider("builtin"))
    assert ("image scan", 0, 0) in seen and ("embeddings", 0, 0) in seen
    assert again.num_rows == 10 and hashes2 == hashes and np.array_equal(vectors2, vectors)
