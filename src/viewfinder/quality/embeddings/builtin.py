"""The built-in embedding: numpy and Pillow only, no model weights, about 0.3 ms an image.

Made for near-duplicates: a JPEG re-encode (quality 50–95), a resize (50–150 %), a crop of
up to 10 % and a brightness change of ±20 % keep an image within cosine distance ~0.05 of
its original (99th percentile 0.03 in ``bench/quality_duplicates.py``), while distinct
images, even of the same coarse layout, sit beyond 0.075; :data:`NEAR_DUPLICATE_DISTANCE`
is the threshold between the two. It is not a semantic
embedding (two different photos of cats are not close); use ``clip`` or ``dinov2`` for that.

The vector concatenates, each part normalized and weighted (:data:`PARTS`):

- ``layout``: the low 2-D DCT frequencies (u + v <= 6, DC dropped) of the luminance at
  32×32, for the whole frame and for centred crops of 90 % and 80 % (a crop of the
  original lands close to one of them);
- ``color``: the mean chroma (Cb, Cr) on a 4×4 grid, as a unit vector (a brightness change
  scales it, which the normalization undoes; a constant keeps gray images stable);
- ``edges``: a 4×4 grid of gradient energy.

Dropping the DC term and normalizing each part makes the vector indifferent to brightness
and contrast changes; working at 32×32 from a box-filtered reduction makes it indifferent
to resizing and JPEG noise.

Known limit: brightening an already over-exposed image (mean luminance above ~0.75) clips
its colours to white, which moves the ``color`` part (distance up to ~0.3); the luminance
layout barely moves, so the perceptual hash (:mod:`viewfinder.quality.imagescan`) still
pairs such copies: near-duplicate detection should unite both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from viewfinder.quality.embeddings.base import ProviderConfig

VERSION = 1
SIDE = 32
MAX_FREQ = 6
CROPS = (1.0, 0.9, 0.8)
PARTS = {"layout": 1.0, "color": 1.3, "edges": 0.5}  # tuned on bench/quality_duplicates.py
GRID = 4
NEAR_DUPLICATE_DISTANCE = 0.06
"""Cosine distance below which two images are near-duplicates (tuned by the benchmark)."""
CHROMA_FLOOR = 8.0


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * k * (2 * x + 1) / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


_DCT = _dct_matrix(SIDE)
_U, _V = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
_LOW = np.flatnonzero(((_U + _V) <= MAX_FREQ).ravel() & ((_U + _V) > 0).ravel())
# lower frequencies weigh more: they survive crops and shifts better
_FREQ_WEIGHT = (1.0 / np.sqrt((_U + _V).ravel()[_LOW])).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-6)


class BuiltinProvider:
    """Near-duplicate embedding from luminance layout, colour layout and edge energy.

    Args:
        config: the provider configuration (only ``batch_size`` applies).
    """

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = f"builtin-v{VERSION}"
        self.batch_size = config.batch_size
        self.input_side = 2 * SIDE
        self.cpu_parallel = True
        self.dim = len(_LOW) * len(CROPS) + 2 * GRID * GRID + 1 + GRID * GRID

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for i, im in enumerate(images):
            out[i] = self._one(im)
        return out

    def _one(self, im: Image.Image) -> np.ndarray:
        from PIL import Image as PILImage

        if im.mode == "YCbCr":
            ycc = im
        else:
            ycc = im.convert("RGB").convert("YCbCr")
        w, h = ycc.size
        parts: list[np.ndarray] = []
        y_full: Any = None
        for c in CROPS:
            cw, ch = w * c, h * c
            box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
            y = np.asarray(ycc.getchannel(0).resize((SIDE, SIDE), PILImage.Resampling.BOX, box=box),
                           dtype=np.float32)
            if y_full is None:
                y_full = y
            coef = (_DCT @ y @ _DCT.T).ravel()[_LOW] * _FREQ_WEIGHT
            parts.append(_unit(coef) / np.sqrt(len(CROPS)))
        layout = np.concatenate(parts) * PARTS["layout"]

        small = np.asarray(ycc.resize((GRID, GRID), PILImage.Resampling.BOX), dtype=np.float32)
        chroma = (small[..., 1:] - 128.0).ravel()
        color = _unit(np.concatenate([chroma, [CHROMA_FLOOR]])) * PARTS["color"]

        gx = np.abs(np.diff(y_full, axis=1))[:-1, :]
        gy = np.abs(np.diff(y_full, axis=0))[:, :-1]
        g = gx + gy
        cell = (SIDE - 1) // GRID
        energy = g[: cell * GRID, : cell * GRID].reshape(GRID, cell, GRID, cell).mean(axis=(1, 3)).ravel()
        edges = _unit(energy - energy.mean()) * PARTS["edges"]
        return _unit(np.concatenate([layout, color, edges]).astype(np.float32))
