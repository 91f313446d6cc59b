"""A PyTorch-style map dataset over a version: lazy image loading, torch optional.

Works with ``torch.utils.data.DataLoader`` (it needs only ``__len__``/``__getitem__``);
without torch it returns NumPy arrays. Targets follow torchvision's detection convention:
``boxes`` as ``[x1, y1, x2, y2]`` float32, ``labels`` as int64 indices into ``classes``.

Example:
    >>> ds = ws.dataset("street@v1.0").torch_dataset('split == "train"')   # doctest: +SKIP
    >>> image, target = ds[0]                                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from viewfinder.api import DatasetView, Sample


class VisionDataset:
    """Samples matching ``filter`` at the view's version (pinned: later commits don't move it)."""

    def __init__(self, view: DatasetView, *, filter: str | None = None,
                 transform: Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]] | None = None,
                 as_tensors: bool | None = None) -> None:
        self._samples: list[Sample] = list(view.iter_samples(filter))
        # Fixed before any worker starts, so every DataLoader worker maps classes alike.
        self.classes = list(view.classes)
        seen = {lab.class_name for s in self._samples for lab in s.labels}
        self.classes += sorted(seen - set(self.classes))
        self._index = {c: i for i, c in enumerate(self.classes)}
        self.transform = transform
        if as_tensors is None:
            try:
                import torch  # noqa: F401

                as_tensors = True
            except ImportError:
                as_tensors = False
        self.as_tensors = as_tensors

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        s = self._samples[i]
        image = np.asarray(s.image().convert("RGB"))
        boxes = [(lab.bbox[0], lab.bbox[1], lab.bbox[0] + lab.bbox[2], lab.bbox[1] + lab.bbox[3])
                 for lab in s.labels if lab.bbox is not None]
        target: dict[str, Any] = {
            "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray([self._index[lab.class_name]
                                  for lab in s.labels if lab.bbox is not None], dtype=np.int64),
            "sample_id": s.id, "key": s.key,
        }
        if self.as_tensors:
            import torch

            image = torch.from_numpy(image.copy()).permute(2, 0, 1)
            target["boxes"] = torch.from_numpy(target["boxes"])
            target["labels"] = torch.from_numpy(target["labels"])
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target
