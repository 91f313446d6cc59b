"""Reading image files at import: hash, size, type, and the cheap integrity checks.

Runs in worker processes, so it imports only what it needs and returns plain tuples.
A full decode is left to the quality scan; here a file must identify as an image, stay
under the decompression-bomb pixel limit, and (JPEG, PNG) end with its end marker, which
catches truncated files without decoding them.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

MAX_PIXELS = 178_956_970  # Pillow's own bomb limit (2 × MAX_IMAGE_PIXELS)
MAX_FILE_BYTES = 1024**3

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "GIF": "image/gif",
               "TIFF": "image/tiff", "WEBP": "image/webp", "MPO": "image/jpeg"}
_TRANSPOSED = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class ImageInfo:
    content_hash: str
    size_bytes: int
    width: int
    height: int
    media_type: str


def _truncated(data: bytes, fmt: str) -> bool:
    if fmt in ("JPEG", "MPO"):
        return data.rstrip(b"\x00").rstrip(b"\r\n")[-2:] != b"\xff\xd9"
    if fmt == "PNG":
        return b"IEND" not in data[-32:]
    return False


def inspect_image(data: bytes) -> ImageInfo:
    """Hash and check one image's bytes.

    Raises:
        ValueError: not an image, truncated, or a decompression bomb (message says which).
    """
    from PIL import Image, UnidentifiedImageError

    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt = im.format or ""
                w, h = im.size
                try:
                    orientation = im.getexif().get(0x0112, 1)
                except Exception:  # noqa: BLE001 - broken EXIF: keep the stored orientation
                    orientation = 1
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"decompression bomb refused: {e}") from None
    except UnidentifiedImageError:
        raise ValueError("not a readable image: unknown or corrupt image format") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"not a readable image: {e}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"image has no pixels ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise ValueError(f"decompression bomb refused: {w}x{h} pixels exceeds {MAX_PIXELS}")
    if _truncated(data, fmt):
        raise ValueError(f"truncated {fmt} file (no end marker)")
    if orientation in _TRANSPOSED:
        w, h = h, w
    return ImageInfo(digest, len(data), w, h, MEDIA_TYPES.get(fmt, f"image/{fmt.lower()}"))


def process_chunk(items: list[tuple[str, str]], store_root: str, storage_options: dict,
                  ) -> list[tuple[str, ImageInfo | None, str | None]]:
    """For each ``(key, path)``: inspect, store the blob; ``(key, info, error)``."""
    from viewfinder.storage.blobs import BlobStore

    blobs = BlobStore(store_root, storage_options)
    out: list[tuple[str, ImageInfo | None, str | None]] = []
    for key, path in items:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise ValueError(f"file is larger than {MAX_FILE_BYTES} bytes")
            info = inspect_image(data)
            blobs.put_bytes(data, info.content_hash)
            out.append((key, info, None))
        except (OSError, ValueError) as e:
            out.append((key, None, str(e)))
    return out
