"""The VOC segmentation palette and PNG codec, for ``viewfinder.formats.voc``.

VOC segmentation PNGs colour pixels with a fixed palette: index ``i`` gets the colour
:func:`voc_color` builds by interleaving the bits of ``i``. In ``SegmentationClass`` the
index is the class (0 background, 255 the void border), in ``SegmentationObject`` the
instance number. Masks are handled as ``(h, w)`` arrays of ``0xRRGGBB`` codes.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.core.types import LabelKind, SourceLabel

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
"""The 20 Pascal VOC classes; class ``i`` has palette colour ``voc_color(i + 1)``."""

BACKGROUND, IGNORED = "background", "ignored"
VOID_INDEX = 255
"""Palette index of the void border in VOC segmentation PNGs: colour ``(224, 224, 192)``."""


def voc_color(index: int) -> tuple[int, int, int]:
    """The VOC palette colour of ``index`` (bit-interleaved; unique for ``index < 2**24``).

    Example:
        >>> voc_color(1), voc_color(255)
        ((128, 0, 0), (224, 224, 192))
    """
    r = g = b = 0
    c = index
    for j in range(8):
        r |= (c & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return r, g, b


def voc_index(color: tuple[int, int, int]) -> int:
    """Inverse of :func:`voc_color`."""
    r, g, b = color
    c = 0
    for j in range(8):
        c |= ((r >> (7 - j)) & 1) << (3 * j)
        c |= ((g >> (7 - j)) & 1) << (3 * j + 1)
        c |= ((b >> (7 - j)) & 1) << (3 * j + 2)
    return c


def code(color: tuple[int, int, int]) -> int:
    """An RGB colour as one ``0xRRGGBB`` integer."""
    return (color[0] << 16) | (color[1] << 8) | color[2]


def uncode(value: int) -> tuple[int, int, int]:
    """Inverse of :func:`code`."""
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


VOID_CODE = code(voc_color(VOID_INDEX))


def class_colors(classes: list[str]) -> dict[str, tuple[int, int, int]]:
    """Default colours: VOC's for VOC names, black for background, the void colour for
    ``ignored``, and palette indices 21, 22, ... (skipping 255) for other names in order."""
    colors: dict[str, tuple[int, int, int]] = {}
    next_index = len(VOC_CLASSES) + 1
    for name in classes:
        if name == BACKGROUND:
            colors[name] = (0, 0, 0)
        elif name == IGNORED:
            colors[name] = voc_color(VOID_INDEX)
        elif name in VOC_CLASSES:
            colors[name] = voc_color(VOC_CLASSES.index(name) + 1)
        else:
            if next_index == VOID_INDEX:
                next_index += 1
            colors[name] = voc_color(next_index)
            next_index += 1
    return colors


def load_codes(path: Path) -> np.ndarray:
    """A segmentation PNG as an ``(h, w)`` array of ``0xRRGGBB`` codes (palette applied)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("L", "I", "I;16"):
            index = np.asarray(im, dtype=np.int64)
            table = np.array([code(voc_color(i)) for i in range(256)], dtype=np.int64)
            return table[np.clip(index, 0, 255)]
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def mask_label(mask: np.ndarray, name: str) -> SourceLabel:
    """A boolean ``(h, w)`` array → a ``mask`` label (compressed COCO RLE, bbox derived)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return SourceLabel(kind=LabelKind.MASK, class_name=name, bbox=(x, y, w, h),
                       mask={"size": [int(mask.shape[0]), int(mask.shape[1])],
                             "counts": rle["counts"].decode("ascii")})


def decode_mask(mask: dict[str, Any]) -> np.ndarray:
    """A COCO RLE (compressed or not) → a boolean ``(h, w)`` array."""
    from pycocotools import mask as mask_utils

    rle = dict(mask)
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    elif isinstance(rle.get("counts"), str):
        rle["counts"] = rle["counts"].encode("ascii")
    with warnings.catch_warnings():  # pycocotools' decode warns under NumPy 2 (copy keyword)
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def png(codes: np.ndarray) -> bytes:
    """An ``(h, w)`` array of colour codes → RGB PNG bytes (deterministic)."""
    from PIL import Image

    rgb = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()

