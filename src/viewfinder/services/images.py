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


_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _exif_orientation(app1: bytes) -> int | None:
    """Orientation (tag 0x0112) from an APP1 Exif payload; None if it cannot be read."""
    if not app1.startswith(b"Exif\x00\x00") or len(app1) < 14:
        return None
    tiff = app1[6:]
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    for i in range(int.from_bytes(tiff[ifd:ifd + 2], order)):
        e = ifd + 2 + 12 * i
        if e + 12 > len(tiff):
            return None
        if int.from_bytes(tiff[e:e + 2], order) == 0x0112:
            return int.from_bytes(tiff[e + 8:e + 10], order)
    return 1


def _fast_header(data: bytes) -> tuple[str, int, int, int] | None:
    """``(format, width, height, orientation)`` of a plain JPEG or PNG from its header
    alone; None for anything else or anything unusual (the caller asks Pillow then)."""
    if data[:2] == b"\xff\xd8":
        pos, n, orientation = 2, len(data), 1
        while pos + 4 <= n:
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if 0xD0 <= marker <= 0xD7 or marker == 0x01:
                pos += 2
                continue
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            if length < 2:
                return None
            if marker == 0xE1 and orientation == 1:
                o = _exif_orientation(data[pos + 4:pos + 2 + length])
                if o is None:
                    return None
                orientation = o
            elif marker in _SOF:
                if pos + 9 > n:
                    return None
                h = int.from_bytes(data[pos + 5:pos + 7], "big")
                w = int.from_bytes(data[pos + 7:pos + 9], "big")
                return ("JPEG", w, h, orientation) if w and h else None
            elif marker == 0xDA:  # scan data before any frame header
                return None
            pos += 2 + length
        return None
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and b"eXIf" not in data:
        return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), 1
    return None


def inspect_image(data: bytes) -> ImageInfo:
    """Hash and check one image's bytes.

    Raises:
        ValueError: not an image, truncated, or a decompression bomb (message says which).
    """
    digest = hashlib.sha256(data).hexdigest()
    fast = _fast_header(data)
    if fast is not None:
        fmt, w, h, orientation = fast
    else:
        fmt, w, h, orientation = _pillow_header(data)
    if w <= 0 or h <= 0:
        raise ValueError(f"image has no pixels ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise ValueError(f"decompression bomb refused: {w}x{h} pixels exceeds {MAX_PIXELS}")
    if _truncated(data, fmt):
        raise ValueError(f"truncated {fmt} file (no end marker)")
    if orientation in _TRANSPOSED:
        w, h = h, w
    return ImageInfo(digest, len(data), w, h, MEDIA_TYPES.get(fmt, f"image/{fmt.lower()}"))


def _pillow_header(data: bytes) -> tuple[str, int, int, int]:
    from PIL import Image, UnidentifiedImageError

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
    return fmt, w, h, orientation


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
