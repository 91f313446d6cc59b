"""Reading image files at import: hash, size, type, and the cheap integrity checks.

Runs in worker processes, so it imports only what it needs and returns plain tuples.
A full decode is left to the quality scan; here a file must identify as an image, stay
under the decompression-bomb pixel limit, and (JPEG, PNG) end with its end marker, which
catches truncated files without decoding them.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

from viewfinder.core.canonical import canonical_json

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
    exif: str | None = None  # canonical JSON of the camera fields kept (see exif_summary)


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


def _fast_header(data: bytes) -> tuple[str, int, int, int, bytes | None] | None:
    """``(format, width, height, orientation, exif)`` of a plain JPEG or PNG from its
    header alone (``exif``: the raw APP1 Exif payload, if any); None for anything else or
    anything unusual (the caller asks Pillow then)."""
    if data[:2] == b"\xff\xd8":
        pos, n, orientation, exif = 2, len(data), 1, None
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
                payload = data[pos + 4:pos + 2 + length]
                o = _exif_orientation(payload)
                if o is None:
                    return None
                orientation, exif = o, payload
            elif marker in _SOF:
                if pos + 9 > n:
                    return None
                h = int.from_bytes(data[pos + 5:pos + 7], "big")
                w = int.from_bytes(data[pos + 7:pos + 9], "big")
                return ("JPEG", w, h, orientation, exif) if w and h else None
            elif marker == 0xDA:  # scan data before any frame header
                return None
            pos += 2 + length
        return None
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and b"eXIf" not in data:
        return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), 1, None
    return None


def inspect_image(data: bytes) -> ImageInfo:
    """Hash and check one image's bytes.

    Raises:
        ValueError: not an image, truncated, or a decompression bomb (message says which).
    """
    digest = hashlib.sha256(data).hexdigest()
    fast = _fast_header(data)
    if fast is not None:
        fmt, w, h, orientation, payload = fast
        exif = exif_summary(payload) if payload is not None else None
    else:
        fmt, w, h, orientation, exif = _pillow_header(data)
    if w <= 0 or h <= 0:
        raise ValueError(f"image has no pixels ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise ValueError(f"decompression bomb refused: {w}x{h} pixels exceeds {MAX_PIXELS}")
    if _truncated(data, fmt):
        raise ValueError(f"truncated {fmt} file (no end marker)")
    if orientation in _TRANSPOSED:
        w, h = h, w
    return ImageInfo(digest, len(data), w, h, MEDIA_TYPES.get(fmt, f"image/{fmt.lower()}"),
                     canonical_json(exif) if exif else None)


def _pillow_header(data: bytes) -> tuple[str, int, int, int, dict[str, Any] | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt = im.format or ""
                w, h = im.size
                try:
                    tags = im.getexif()
                    orientation = tags.get(0x0112, 1)
                    exif = exif_summary(tags)
                except Exception:  # noqa: BLE001 - broken EXIF: keep the stored orientation
                    orientation, exif = 1, None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"decompression bomb refused: {e}") from None
    except UnidentifiedImageError:
        raise ValueError("not a readable image: unknown or corrupt image format") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"not a readable image: {e}") from None
    return fmt, w, h, orientation, exif


# EXIF fields kept with each sample (``metadata.exif.<name>``): what curators filter on.
_EXIF_MAIN = {0x010F: "make", 0x0110: "model", 0x0131: "software", 0x0132: "datetime"}
_EXIF_IFD = {0x9003: "datetime_original", 0x829A: "exposure_time", 0x829D: "f_number",
             0x8827: "iso", 0x920A: "focal_length", 0xA434: "lens_model"}
_EXIF_POINTER, _GPS_POINTER = 0x8769, 0x8825
_MAX_EXIF_TEXT = 200


def exif_summary(exif: Any) -> dict[str, Any] | None:
    """The camera fields of an image's EXIF as JSON-safe values, or None if it has none.

    ``exif``: a raw APP1 payload (``Exif\\0\\0`` + TIFF) or a Pillow ``Image.Exif``.
    Dates become ISO 8601 (``2024-05-01T12:30:00``), GPS decimal degrees (``gps_lat``,
    ``gps_lon``, ``gps_alt``). Unreadable EXIF gives None: it never fails an import.
    """
    from PIL import Image

    try:
        if isinstance(exif, bytes | bytearray):
            tags = Image.Exif()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Corrupt EXIF data": returned as None below
                tags.load(bytes(exif))
        else:
            tags = exif
        out: dict[str, Any] = {}
        for table, source in ((_EXIF_MAIN, tags), (_EXIF_IFD, tags.get_ifd(_EXIF_POINTER))):
            for tag, name in table.items():
                value = _json_value(source.get(tag))
                if value is not None:
                    out[name] = value
        gps = tags.get_ifd(_GPS_POINTER)
        lat, lon = _degrees(gps.get(2), gps.get(1)), _degrees(gps.get(4), gps.get(3))
        if lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180:
            out["gps_lat"], out["gps_lon"] = round(lat, 7), round(lon, 7)
            alt = _json_value(gps.get(6))
            if isinstance(alt, float):
                out["gps_alt"] = -alt if gps.get(5) in (1, b"\x01") else alt
    except Exception:  # noqa: BLE001 - EXIF is untrusted and optional: never fail an import on it
        return None
    for key in ("datetime", "datetime_original"):
        if isinstance(out.get(key), str):
            out[key] = _iso_datetime(out[key])
    return out or None


def _json_value(v: Any) -> Any:
    """An EXIF value as str, int or float (rationals as floats); None when unusable."""
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str):
        v = v.replace("\x00", "").strip()
        return v[:_MAX_EXIF_TEXT] or None
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, tuple) and len(v) == 1:
        return _json_value(v[0])
    try:
        f = float(v)  # IFDRational and friends
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return round(f, 6) if math.isfinite(f) else None


def _degrees(dms: Any, ref: Any) -> float | None:
    try:
        d, m, sec = (float(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + sec / 3600
    if not math.isfinite(value):
        return None
    ref = ref.decode("ascii", "replace") if isinstance(ref, bytes) else ref
    return -value if isinstance(ref, str) and ref.strip().upper() in ("S", "W") else value


def _iso_datetime(text: str) -> str:
    """``2024:05:01 12:30:00`` → ``2024-05-01T12:30:00``; anything else as it was."""
    if len(text) >= 19 and text[4] == ":" and text[7] == ":" and text[10] == " ":
        return f"{text[:4]}-{text[5:7]}-{text[8:10]}T{text[11:19]}"
    return text


def read_bounded(path: str) -> bytes:
    """The file's bytes, refusing files over ``MAX_FILE_BYTES``. Reads the size first:
    ``read(MAX_FILE_BYTES + 1)`` would allocate a 1 GiB buffer for every small image."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"file is larger than {MAX_FILE_BYTES} bytes")
        data = f.read(size + 1)  # one byte more: a file that grew since the stat shows it
        if len(data) > size:
            data += f.read(MAX_FILE_BYTES + 1 - len(data))
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file is larger than {MAX_FILE_BYTES} bytes")
    return data


def process_chunk(items: list[tuple[str, str]], store_root: str, storage_options: dict,
                  ) -> list[tuple[str, ImageInfo | None, str | None]]:
    """For each ``(key, path)``: inspect, store the blob; ``(key, info, error)``."""
    from viewfinder.storage.blobs import BlobStore

    blobs = BlobStore(store_root, storage_options)
    out: list[tuple[str, ImageInfo | None, str | None]] = []
    for key, path in items:
        try:
            data = read_bounded(path)
            info = inspect_image(data)
            blobs.put_bytes(data, info.content_hash)
            out.append((key, info, None))
        except (OSError, ValueError) as e:
            out.append((key, None, str(e)))
    return out
