"""Stored embeddings: computed once per (provider, image), kept in a versioned Lance table.

Each provider has its own table next to the dataset's tables,
``{store}/datasets/{id}/embeddings-{provider}.lance`` (a fixed-size-list column needs one
vector length per table), keyed by ``(provider, content_hash)``. :func:`compute` embeds only
the images of a version that the table lacks, in batches, with progress, and appends them
as a new Lance version; a vector index (IVF) is built once the table is large enough to
profit. Images that do not decode are left out (the image scan reports them).

Example:
    >>> from viewfinder.quality.embeddings import get_provider                 # doctest: +SKIP
    >>> hashes, vectors = compute(ctx, get_provider("builtin"))                # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from viewfinder.errors import StorageError

if TYPE_CHECKING:
    from PIL import Image

    from viewfinder.quality.context import QualityContext
    from viewfinder.quality.embeddings.base import EmbeddingProvider, ProviderConfig
    from viewfinder.storage.workspace import Workspace

log = logging.getLogger(__name__)

INDEX_MIN_ROWS = 50_000
"""A vector index is built once a table holds this many vectors (below, a scan is faster)."""
CHUNK = 512


def table_uri(ws: Workspace, dataset: Any, provider_name: str) -> str:
    """Where the vectors of ``provider_name`` for ``dataset`` live."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", provider_name).strip("_")
    if slug != provider_name:  # keep distinct names distinct after cleaning
        import hashlib

        slug += "-" + hashlib.sha256(provider_name.encode()).hexdigest()[:8]
    return f"{ws.tables(dataset).base}/embeddings-{slug}.lance"


def schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("provider", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
    ])


def load_image(data: bytes, side: int) -> Image.Image:
    """Decode ``data`` (EXIF orientation applied), JPEGs DCT-scaled to a short side >= ``side``.

    Raises:
        OSError, ValueError: the bytes are not a readable image.
    """
    from PIL import Image, ImageFile, ImageOps

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    im = Image.open(io.BytesIO(data))
    w, h = im.size
    if im.format in ("JPEG", "MPO") and min(w, h) > side:
        scale = min(w, h) / side
        im.draft("RGB", (max(1, int(w / scale)), max(1, int(h / scale))))
    im.load()
    im = ImageOps.exif_transpose(im)
    return im if im.mode == "RGB" else im.convert("RGB")


def _read_stored(uri: str, ws: Workspace, provider: str, hashes: list[str], dim: int,
                 ) -> dict[str, np.ndarray]:
    import lance
    import pyarrow.compute as pc

    try:
        ds = lance.dataset(uri, storage_options=ws.lance_storage_options() or None)
    except (ValueError, FileNotFoundError, OSError):
        return {}
    keys = ds.to_table(columns=["provider", "content_hash"])
    mask = pc.and_(pc.equal(keys["provider"], provider),
                   pc.is_in(keys["content_hash"], value_set=pa.array(hashes, pa.string())))
    positions = pc.indices_nonzero(mask).to_pylist()
    if not positions:
        return {}
    t = ds.take(positions, columns=["content_hash", "vector"])  # a racing writer's twin rows: last wins
    flat = t.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False)
    vecs = np.asarray(flat, dtype=np.float32).reshape(t.num_rows, dim)
    return dict(zip(t.column("content_hash").to_pylist(), vecs, strict=True))


def _append(uri: str, ws: Workspace, provider: str, hashes: list[str], vectors: np.ndarray) -> None:
    import lance

    if not hashes:
        return
    dim = vectors.shape[1]
    table = pa.table({
        "provider": pa.array([provider] * len(hashes), pa.string()),
        "content_hash": pa.array(hashes, pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), dim),
    }, schema=schema(dim))
    opts = ws.lance_storage_options() or None
    try:
        try:
            lance.dataset(uri, storage_options=opts)
            mode = "append"  # the rows are those the table lacked: no match needed
        except (ValueError, FileNotFoundError, OSError):
            mode = "create"
        ds = lance.write_dataset(table, uri, mode=mode, storage_options=opts)
        _maybe_index(ds)
    except (OSError, ValueError, RuntimeError) as e:
        raise StorageError(f"cannot store embeddings: {e}", path=uri) from e


def _maybe_index(ds: Any) -> None:
    """(Re)build the IVF index when the table is large and a tenth of it is unindexed."""
    n = ds.count_rows()
    if n < INDEX_MIN_ROWS:
        return
    indexed = sum(int(i.num_rows_indexed) for i in ds.describe_indices() if "vector" in i.field_names)
    if indexed >= 0.9 * n:
        return
    ds.create_index("vector", index_type="IVF_FLAT", metric="cosine",
                    num_partitions=max(1, int(np.sqrt(n))), replace=True)


def embed_chunk(hashes: Sequence[str], store_root: str, storage_options: dict[str, Any],
                cache_dir: str | None, config: ProviderConfig,
                ) -> tuple[list[str], np.ndarray]:
    """Embed the images ``hashes`` of a blob store (a worker's unit); undecodable images
    are skipped. Returns the embedded hashes and their vectors."""
    from pathlib import Path

    from viewfinder.quality.embeddings.base import get_provider
    from viewfinder.storage.blobs import BlobStore

    provider = get_provider(config.provider, model=config.model, random_init=config.random_init,
                            batch_size=config.batch_size, device=config.device)
    blobs = BlobStore(store_root, storage_options, cache_dir=Path(cache_dir) if cache_dir else None)
    return _embed_from(blobs, hashes, provider)


def _embed_from(blobs: Any, hashes: Sequence[str], provider: EmbeddingProvider,
                ) -> tuple[list[str], np.ndarray]:
    import struct

    done: list[str] = []
    images: list[Image.Image] = []
    for h in hashes:
        try:
            images.append(load_image(blobs.read(h), provider.input_side))
        except (StorageError, OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
            log.debug("embeddings: skipping image %s: %s", h, e)
            continue
        done.append(h)
    if not images:
        return [], np.empty((0, provider.dim), dtype=np.float32)
    return done, np.asarray(provider.embed(images), dtype=np.float32)


def compute(ctx: QualityContext, provider: EmbeddingProvider | str) -> tuple[list[str], np.ndarray]:
    """The vectors of the version's distinct images under ``provider`` (a provider, or the
    name of one built with its defaults).

    Vectors stored before are read back; only missing images are embedded (in batches of
    ``provider.batch_size``, with ``ctx.progress("embeddings", done, total)``) and stored.
    Memoized on the context per provider.

    Returns:
        ``(content_hashes, vectors)``: hashes in first-seen (key) order, images that do
        not decode left out; vectors ``(len(content_hashes), provider.dim)`` float32.
    """

    if isinstance(provider, str):
        from viewfinder.quality.embeddings.base import get_provider

        provider = get_provider(provider)
    emb = provider

    def run() -> tuple[list[str], np.ndarray]:
        hashes = list(dict.fromkeys(ctx.sample_hashes.column("content_hash").to_pylist()))
        return compute_hashes(ctx.ws, ctx.dataset, hashes, emb, progress=ctx.progress)

    result: tuple[list[str], np.ndarray] = ctx.memo(f"embeddings:{emb.name}", run)
    return result


def compute_hashes(ws: Workspace, dataset: Any, hashes: list[str], provider: EmbeddingProvider, *,
                   progress: Any = None, workers: int | None = None,
                   ) -> tuple[list[str], np.ndarray]:
    """:func:`compute` for an explicit list of distinct hashes of ``dataset``."""
    uri = table_uri(ws, dataset, provider.name)
    stored = _read_stored(uri, ws, provider.name, hashes, provider.dim)
    todo = [h for h in hashes if h not in stored]
    report = progress or (lambda stage, done, total: None)
    total = len(todo)
    report("embeddings", 0, total)
    new_hashes: list[str] = []
    new_vecs: list[np.ndarray] = []
    n = workers or os.cpu_count() or 1
    config: ProviderConfig | None = getattr(provider, "config", None)
    step = max(provider.batch_size, 1)
    if provider.cpu_parallel and config is not None and n > 1 and total >= 4 * CHUNK:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from viewfinder.quality.imagescan import _pool_context

        store, opts, cache_dir = ws.store_url, ws.fsspec_storage_options(), str(ws.path / "cache")
        seen = 0
        with ProcessPoolExecutor(max_workers=n, mp_context=_pool_context()) as pool:
            futures = {pool.submit(embed_chunk, todo[i:i + CHUNK], store, opts, cache_dir, config): i
                       for i in range(0, total, CHUNK)}
            for fut in as_completed(futures):
                hs, vs = fut.result()
                new_hashes.extend(hs)
                new_vecs.append(vs)
                seen += min(CHUNK, total - futures[fut])
                report("embeddings", seen, total)
    else:
        for i in range(0, total, step):
            hs, vs = _embed_from(ws.blobs, todo[i:i + step], provider)
            new_hashes.extend(hs)
            new_vecs.append(vs)
            report("embeddings", min(i + step, total), total)
    fresh = np.concatenate(new_vecs) if new_vecs else np.empty((0, provider.dim), np.float32)
    _append(uri, ws, provider.name, new_hashes, fresh)
    stored.update(zip(new_hashes, fresh, strict=True))
    out = [h for h in hashes if h in stored]
    vectors = np.stack([stored[h] for h in out]) if out else np.empty((0, provider.dim), np.float32)
    return out, vectors.astype(np.float32, copy=False)
