"""Embeddings, neighbours and similarity search, as a curator hunting duplicates uses them."""

from __future__ import annotations

import io
import json
import os
import sys
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

import viewfinder.api as vf
from viewfinder.errors import InvalidInput, MissingDependency, NotFound
from viewfinder.quality import neighbors
from viewfinder.quality.context import QualityContext
from viewfinder.quality.embeddings import get_provider, store
from viewfinder.quality.embeddings.builtin import NEAR_DUPLICATE_DISTANCE
from viewfinder.services import versions as vs
from viewfinder.services.ingest import import_source
from viewfinder.services.similar import similar
from viewfinder.storage.workspace import Workspace


def _photo_tiles() -> list[Image.Image]:
    """Real photographs: non-overlapping tiles of scikit-learn's two bundled sample images."""
    from sklearn.datasets import load_sample_images

    tiles = []
    for arr in load_sample_images().images:
        im = Image.fromarray(arr)
        for r in range(2):
            for c in range(3):
                tiles.append(im.crop((c * 213, r * 213, (c + 1) * 213, (r + 1) * 213)))
    return tiles


def _jpeg(im: Image.Image, quality: int = 90) -> Image.Image:
    b = io.BytesIO()
    im.save(b, "JPEG", quality=quality)
    return Image.open(io.BytesIO(b.getvalue())).convert("RGB")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - a @ b)


@pytest.fixture(scope="module")
def tiles() -> list[Image.Image]:
    return _photo_tiles()


def test_builtin_vectors_are_unit_float32(tiles: list[Image.Image]) -> None:
    p = get_provider("builtin")
    v = p.embed(tiles[:3] + [Image.new("L", (50, 40), 128), Image.new("RGBA", (30, 90))])
    assert v.dtype == np.float32 and v.shape == (5, p.dim)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(v, p.embed(tiles[:3] + [Image.new("L", (50, 40), 128), Image.new("RGBA", (30, 90))]))


def test_builtin_keeps_edited_copies_close_and_other_photos_far(tiles: list[Image.Image]) -> None:
    p = get_provider("builtin")
    base = tiles[4]  # a well-exposed photo (see the builtin module on over-exposed ones)
    w, h = base.size
    copies = {
        "jpeg q50": _jpeg(base, 50),
        "half size": _jpeg(base.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
        "1.5x size": _jpeg(base.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.LANCZOS)),
        "crop 10%": _jpeg(base.crop((int(0.06 * w), int(0.04 * h), int(0.96 * w), int(0.94 * h)))),
        "brighter 20%": _jpeg(ImageEnhance.Brightness(base).enhance(1.2)),
        "darker 20%": _jpeg(ImageEnhance.Brightness(base).enhance(0.8)),
    }
    v = p.embed([base, *copies.values(), *[t for i, t in enumerate(tiles) if i != 4]])
    for k, name in enumerate(copies, start=1):
        assert _cos(v[0], v[k]) < NEAR_DUPLICATE_DISTANCE, name
    others = v[len(copies) + 1:]
    assert min(_cos(v[0], o) for o in others) > 2 * NEAR_DUPLICATE_DISTANCE
    groups = neighbors.embedding_groups(v, NEAR_DUPLICATE_DISTANCE)
    assert groups == [list(range(len(copies) + 1))]


def test_provider_registry_rejects_what_it_cannot_do() -> None:
    with pytest.raises(InvalidInput, match="unknown embedding provider 'vit'"):
        get_provider("vit")
    with pytest.raises(InvalidInput, match="builtin embedding provider takes no model"):
        get_provider("builtin", model="/models/clip")
    with pytest.raises(InvalidInput, match="batch_size"):
        get_provider("builtin", batch_size=10**6)


def test_learned_provider_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(MissingDependency, match=r"viewfinder\[learned\]"):
        get_provider("clip", random_init=True)


@pytest.mark.parametrize("family", ["clip", "dinov2"])
def test_learned_provider_with_random_weights(family: str, tiles: list[Image.Image]) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    p = get_provider(family, random_init=True, batch_size=2)
    assert p.name == f"{family}:random:small" and not p.cpu_parallel
    v = p.embed(tiles[:5])  # three batches
    assert v.shape == (5, p.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # seeded weights: a second build gives the same vectors; different photos differ
    assert np.allclose(get_provider(family, random_init=True).embed(tiles[:5]), v, atol=1e-5)
    assert not np.allclose(v[0], v[3], atol=1e-3)


def test_learned_provider_missing_weights_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from viewfinder.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot load dinov2 weights"):
        get_provider("dinov2", model=str(tmp_path / "no-such-model"))


# -- stored embeddings and search over a dataset ---------------------------------------------


@pytest.fixture
def sws(ws: vf.Workspace) -> Workspace:
    """The storage-level workspace the services and the quality layer take."""
    return ws._ws


@pytest.fixture
def photos(tmp_path: Path, tiles: list[Image.Image]) -> Path:
    """An image folder: six photos, an exact copy and an edited copy of the first."""
    root = tmp_path / "src"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    for i, t in enumerate(tiles[:6]):
        t.save(root / "train" / f"photo{i}.jpg", quality=90)
    (root / "val" / "exact.jpg").write_bytes((root / "train" / "photo0.jpg").read_bytes())
    edited = ImageEnhance.Brightness(tiles[0].resize((160, 160))).enhance(1.15)
    edited.save(root / "val" / "edited.jpg", quality=70)
    return root


def _ids(sws: Workspace, spec: str) -> dict[str, str]:
    with QualityContext(sws, vs.resolve(sws, spec)) as ctx:
        return {s["key"]: s["id"] for s in ctx.sample_hashes.to_pylist()}


def test_compute_stores_vectors_and_embeds_only_new_images(sws: Workspace, photos: Path,
                                                           tiles: list[Image.Image],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "INDEX_MIN_ROWS", 5)  # index even this tiny table
    import_source(sws, photos, "pics", format="imagefolder")
    p = get_provider("builtin")
    seen: list[tuple[str, int, int]] = []
    with QualityContext(sws, vs.resolve(sws, "pics"), progress=lambda *a: seen.append(a)) as ctx:
        hashes, vectors = store.compute(ctx, p)
        assert store.compute(ctx, "builtin")[0] is hashes  # memoized, by name too
    assert len(hashes) == 7 and vectors.shape == (7, p.dim)  # 8 samples, 7 distinct images
    assert seen[-1] == ("embeddings", 7, 7)
    first = store.load_image((photos / "train" / "photo0.jpg").read_bytes(), p.input_side)
    assert hashes[0] == sha256((photos / "train" / "photo0.jpg").read_bytes()).hexdigest()
    assert np.allclose(vectors[0], p.embed([first])[0], atol=1e-6)

    import lance

    ds = sws.catalog.get_dataset("pics")
    table = lance.dataset(store.table_uri(sws, ds, p.name))
    assert table.count_rows() == 7
    assert table.schema.field("vector").type.list_size == p.dim
    assert [i.num_rows_indexed for i in table.describe_indices() if i.field_names == ["vector"]] == [7]
    near = table.to_table(nearest={"column": "vector", "q": vectors[0], "k": 1})
    assert near.column("content_hash").to_pylist() == [hashes[0]]

    tiles[7].save(photos / "train" / "new.jpg")
    import_source(sws, photos, "pics", format="imagefolder")
    seen.clear()
    with QualityContext(sws, vs.resolve(sws, "pics"), progress=lambda *a: seen.append(a)) as ctx:
        hashes2, vectors2 = store.compute(ctx, p)
    assert seen[-1] == ("embeddings", 1, 1) and len(hashes2) == 8
    assert np.array_equal(vectors2[[hashes2.index(h) for h in hashes]], vectors)
    assert lance.dataset(store.table_uri(sws, ds, p.name)).count_rows() == 8


def test_undecodable_images_are_left_out(sws: Workspace, photos: Path) -> None:
    import_source(sws, photos, "pics", format="imagefolder")
    blob = Path(sws.blobs.local_path(sha256((photos / "train" / "photo3.jpg").read_bytes()).hexdigest()))
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:2000])  # truncated after import
    with QualityContext(sws, vs.resolve(sws, "pics")) as ctx:
        hashes, vectors = store.compute(ctx, get_provider("builtin"))
    assert len(hashes) == 6 and vectors.shape[0] == 6
    ids = _ids(sws, "pics")
    with pytest.raises(InvalidInput, match="photo3.jpg.*cannot be decoded"):
        similar(sws, "pics", ids["train/photo3.jpg"])


def test_similar_lists_exact_then_edited_copies_first(sws: Workspace, photos: Path) -> None:
    import_source(sws, photos, "pics", format="imagefolder")
    ids = _ids(sws, "pics")
    hits = similar(sws, "pics@main", ids["train/photo0.jpg"], k=4)
    assert [h["key"] for h in hits[:2]] == ["val/exact.jpg", "val/edited.jpg"]
    assert hits[0]["distance"] == 0.0 and 0 < hits[1]["distance"] < NEAR_DUPLICATE_DISTANCE
    assert hits[2]["distance"] > 2 * NEAR_DUPLICATE_DISTANCE
    assert len(hits) == 4 and ids["train/photo0.jpg"] not in {h["sample_id"] for h in hits}
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    assert hits[0]["split"] == "val"
    # the query by key works too; k larger than the dataset lists everyone else once
    assert len(similar(sws, "pics", "train/photo0.jpg", k=50)) == 7
    with pytest.raises(NotFound, match="no sample 'nope' in pics@main"):
        similar(sws, "pics", "nope")


def test_cli_embed_and_similar(tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from viewfinder.cli.main import app

    runner = CliRunner()
    monkeypatch.setenv("VIEWFINDER_WORKSPACE", str(tmp_path / "cli-ws"))
    assert runner.invoke(app, ["init", str(tmp_path / "cli-ws")]).exit_code == 0
    r = runner.invoke(app, ["import", str(photos), "-d", "pics", "--format", "imagefolder"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["embed", "pics", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["embedded"] == 7 and out["provider"] == "builtin-v1" and out["not_decodable"] == 0
    r = runner.invoke(app, ["similar", "pics@main", "--sample", "train/photo0.jpg", "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert [h["key"] for h in json.loads(r.stdout)] == ["val/exact.jpg", "val/edited.jpg"]
    r = runner.invoke(app, ["similar", "pics", "--sample", "missing-id"])
    assert r.exit_code == 1 and "no sample 'missing-id'" in r.output
    r = runner.invoke(app, ["similar", "pics", "--sample", "train/photo1.jpg", "--provider", "vit"])
    assert r.exit_code == 1 and "unknown embedding provider" in r.output


# -- neighbours ---------------------------------------------------------------------------------


def test_phash_groups_equal_brute_force_and_chain() -> None:
    rng = np.random.default_rng(3)
    h = rng.integers(0, 2**63, size=3000, dtype=np.int64).view(np.uint64) * np.uint64(2)
    for k in range(200):  # near copies: up to 10 bits flipped
        bits = rng.choice(64, size=int(rng.integers(0, 11)), replace=False)
        h[2999 - k] = h[k] ^ np.uint64(sum(1 << int(b) for b in bits))
    h[100] = h[101]  # equal hashes
    d = np.bitwise_count(h[:, None] ^ h[None, :])
    for max_d in (0, 5, 10):
        i, j = np.nonzero(np.triu(d <= max_d, 1))
        assert neighbors.phash_groups(h, max_d) == neighbors.components(len(h), i, j)
    # chaining: a-b and b-c within 2 bits make one group even though a-c differ by 4
    assert neighbors.phash_groups(np.array([0b0, 0b11, 0b1111], dtype=np.int64), 2) == [[0, 1, 2]]
    assert neighbors.phash_groups(np.array([], dtype=np.int64), 4) == []


def test_knn_index_agrees_with_exact_search(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    v = rng.standard_normal((600, 16)).astype(np.float32)
    exact_i, exact_d = neighbors.knn(v, 5)
    assert not (exact_i == np.arange(600)[:, None]).any()  # self excluded
    assert np.all(np.diff(exact_d, axis=1) >= -1e-6)
    monkeypatch.setattr(neighbors, "EXACT_KNN_MAX", 10)  # force the usearch index
    approx_i, approx_d = neighbors.knn(v, 5)
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact_i, approx_i, strict=True)])
    assert overlap > 0.95
    # an approximate index may miss a true nearest neighbour now and then (its graph is
    # built by several threads); where it finds it, the distance is the exact one
    same = approx_i[:, 0] == exact_i[:, 0]
    assert same.mean() > 0.95
    assert np.allclose(approx_d[same, 0], exact_d[same, 0], atol=2e-3)
    idx, dist = neighbors.knn(v[:3], 5)  # fewer others than k
    assert (idx[:, 2:] == -1).all() and np.isinf(dist[:, 2:]).all()


def test_embedding_pairs_find_every_close_pair_and_cap_floods() -> None:
    rng = np.random.default_rng(11)
    v = rng.standard_normal((2000, 12)).astype(np.float32) @ rng.standard_normal((12, 64)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    noise = rng.standard_normal((200, 64)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    v[1800:] = v[:200] + rng.uniform(0.05, 0.4, (200, 1)).astype(np.float32) * noise
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    d = 1.0 - v @ v.T
    truth = set(zip(*np.nonzero(np.triu(d <= 0.06, 1)), strict=True))
    i, j, dist = neighbors.embedding_pairs(v, 0.06, k=100)
    assert {(int(a), int(b)) for a, b in zip(i, j, strict=True)} == {(int(a), int(b)) for a, b in truth}
    assert np.allclose(dist, d[i, j], atol=1e-5) and (dist <= 0.06).all()
    # a flood of 40 copies: each keeps its k nearest partners, and they stay one group
    flood = np.repeat(v[:1], 40, axis=0) + 1e-3 * rng.standard_normal((40, 64)).astype(np.float32)
    i, j, _ = neighbors.embedding_pairs(flood, 0.06, k=3)
    assert np.bincount(np.r_[i, j], minlength=40).min() >= 3 and len(i) < 40 * 39 // 2
    assert neighbors.embedding_groups(flood, 0.06, k=3) == [list(range(40))]
