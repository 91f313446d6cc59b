"""COCO run-length encoded masks, as the formats read and write them.

Viewfinder stores every mask as compressed COCO RLE ``{"size": [h, w], "counts": str}``.
These helpers check RLE taken from untrusted files *before* pycocotools sees it (its C
code trusts its input), and convert the other encodings (uncompressed COCO counts, CVAT's
box-local row-major runs, dense arrays) into that one form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class BadMask(ValueError):
    """An RLE from a source file is inconsistent; the message suits a ``Problem``."""


def counts_from_string(counts: str) -> list[int]:
    """Decode the compressed COCO counts string into run lengths (pure Python).

    A port of ``rleFrString`` from pycocotools' ``maskApi.c`` that refuses bad input
    instead of reading past it.

    Raises:
        BadMask: a character outside the alphabet, a truncated value, a negative run.
    """
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x = k = 0
        more = True
        while more:
            if p >= n:
                raise BadMask("RLE counts string is truncated")
            c = ord(counts[p]) - 48
            if not 0 <= c <= 63:
                raise BadMask(f"RLE counts string has an invalid character {counts[p]!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            raise BadMask("RLE counts string decodes to a negative run length")
        runs.append(x)
    return runs


def check_size(size: Any) -> tuple[int, int]:
    """``(h, w)`` from an RLE ``size`` field, or ``BadMask``."""
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise BadMask(f"RLE size must be [height, width] with non-negative integers, got {size!r}")
    return int(size[0]), int(size[1])


def from_coco(seg: dict[str, Any]) -> dict[str, Any]:
    """A COCO RLE segmentation (compressed or uncompressed) → compressed RLE.

    Raises:
        BadMask: wrong size, counts of the wrong type, or runs that do not cover the image.
    """
    h, w = check_size(seg.get("size"))
    counts = seg.get("counts")
    if isinstance(counts, str):
        runs = counts_from_string(counts)
        if sum(runs) != h * w:
            raise BadMask(f"RLE counts cover {sum(runs)} pixels, size {h}x{w} has {h * w}")
        return {"size": [h, w], "counts": counts}
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise BadMask("uncompressed RLE counts must be non-negative integers")
        if sum(counts) != h * w:
            raise BadMask(f"RLE counts cover {sum(counts)} pixels, size {h}x{w} has {h * w}")
        from pycocotools import mask as mask_utils

        rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    raise BadMask(f"RLE counts must be a list or a string, got {type(counts).__name__}")


def encode(mask: np.ndarray) -> dict[str, Any]:
    """A dense ``(h, w)`` boolean/0-1 array → compressed RLE."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def _c(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def bbox(rle: dict[str, Any]) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` of a compressed RLE."""
    from pycocotools import mask as mask_utils

    return tuple(float(v) for v in mask_utils.toBbox(_c(rle)))  # type: ignore[return-value]


def area(rle: dict[str, Any]) -> int:
    """Foreground pixel count of a compressed RLE."""
    from pycocotools import mask as mask_utils

    return int(mask_utils.area(_c(rle)))


def from_cvat(runs: Sequence[int], left: int, top: int, width: int, height: int,
              image_w: int, image_h: int) -> dict[str, Any]:
    """CVAT XML mask (row-major runs inside a box, starting with background) → full-image RLE.

    Raises:
        BadMask: runs that do not fill the box, or a box outside the image.
    """
    if width <= 0 or height <= 0:
        raise BadMask(f"mask box has no area ({width}x{height})")
    if left < 0 or top < 0 or left + width > image_w or top + height > image_h:
        raise BadMask(f"mask box left={left} top={top} width={width} height={height} "
                      f"is outside the {image_w}x{image_h} image")
    if any(r < 0 for r in runs):
        raise BadMask("mask rle has a negative run")
    if sum(runs) != width * height:
        raise BadMask(f"mask rle covers {sum(runs)} pixels, its {width}x{height} box has "
                      f"{width * height}")
    values = np.arange(len(runs), dtype=np.uint8) % 2
    local = np.repeat(values, np.asarray(runs, dtype=np.int64)).reshape(height, width)
    full = np.zeros((image_h, image_w), dtype=np.uint8)
    full[top:top + height, left:left + width] = local
    return encode(full)
