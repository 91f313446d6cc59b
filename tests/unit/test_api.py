"""The Python API an ML engineer scripts against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import viewfinder as vf
from viewfinder.api import Workspace


@pytest.fixture
def street(ws: Workspace, coco_source: Path) -> Workspace:
    ws.import_source(coco_source, "street")
    return ws


def test_open_workspace_from_env_and_parent_folder(street: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIEWFINDER_WORKSPACE", str(street.path))
    assert vf.open_workspace().datasets() == ["street"]
    monkeypatch.delenv("VIEWFINDER_WORKSPACE")
    sub = street.path / "deeper" / "still"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert vf.open_workspace().path == street.path


def test_missing_workspace_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIEWFINDER_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(vf.WorkspaceNotFound, match="viewfinder init"):
        vf.open_workspace()
    with pytest.raises(vf.ConfigError):
        vf.init_workspace(tmp_path / "w")
        vf.init_workspace(tmp_path / "w")


def test_iterate_samples_with_labels_and_images(street: Workspace) -> None:
    ds = street.dataset("street")
    samples = list(ds.iter_samples('split == "train"'))
    assert samples and all(s.split == "train" for s in samples)
    s = samples[0]
    assert s.labels and s.image().size == (s.width, s.height)


def test_tables_for_pandas_and_polars(street: Workspace) -> None:
    ds = street.dataset("street")
    df = ds.to_pandas()
    assert len(df) == 12 and {"key", "split", "content_hash"} <= set(df.columns)
    labels = ds.to_polars(table="labels")
    assert labels.height == ds.stats()["labels"]


def test_training_dataset_without_torch(street: Workspace) -> None:
    from viewfinder.training import VisionDataset

    ds = VisionDataset(street.dataset("street"), as_tensors=False)
    image, target = ds[0]
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert target["boxes"].shape[1] == 4 and len(target["boxes"]) == len(target["labels"])
    x1, y1, x2, y2 = target["boxes"][0]
    assert x2 > x1 and y2 > y1
    assert len(ds) == 12


def test_training_dataset_in_a_torch_dataloader_with_workers(street: Workspace) -> None:
    """What an ML engineer runs: a multi-worker DataLoader over a pinned version."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    view = street.dataset("street")
    ds = view.torch_dataset('split == "train"')
    expected = {s.id: s for s in view.iter_samples('split == "train"')}
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=lambda batch: tuple(zip(*batch)))
    seen = 0
    for images, targets in loader:
        for image, target in zip(images, targets):
            sample = expected[target["sample_id"]]
            assert isinstance(image, torch.Tensor) and image.dtype == torch.uint8
            assert tuple(image.shape) == (3, sample.height, sample.width)
            boxes = [lab for lab in sample.labels if lab.bbox is not None]
            assert target["boxes"].shape == (len(boxes), 4)
            assert [ds.classes[i] for i in target["labels"].tolist()] == [b.class_name for b in boxes]
            seen += 1
    assert seen == len(expected) == len(ds) > 0
