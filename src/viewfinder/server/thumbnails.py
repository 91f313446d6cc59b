"""Thumbnails: rendered once per image content hash and size, then served from a cache.

The cache key is ``(content_hash, size)`` and nothing else: a request path never names a
file. The caller checks access first and passes the hash it got from the access service;
this module only turns a hash into JPEG bytes.

Rendering uses Pillow's draft mode, so a JPEG is decoded at 1/2, 1/4 or 1/8 scale straight
from the DCT coefficients (a 4000-pixel photo costs about what a 500-pixel one does), then
EXIF-rotated (stored widths and heights, and label coordinates, are in the rotated frame)
and resized. Cache files are written to a temporary name and renamed, so concurrent
renders of one thumbnail (two workers, two processes) never leave a half-written file.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from viewfinder.errors import InvalidInput, StorageError

if TYPE_CHECKING:
    from PIL import Image

ALLOWED_SIZES: tuple[int, ...] = (64, 128, 256, 512)
"""Thumbnail edge lengths (pixels, the longer side). Other requests snap to the next one up."""

MEDIA_TYPE = "image/jpeg"
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_SOURCE_PIXELS = 178_956_970  # same bomb limit as the import


def clamp_size(size: int | None, default: int) -> int:
    """The allowed size to render for a requested one: the smallest allowed size that is
    at least ``size`` (the largest allowed if none is); ``default`` when ``size`` is None.

    Raises:
        InvalidInput: ``size`` is not positive.
    """
    if size is None:
        size = default
    if size <= 0:
        raise InvalidInput(f"thumbnail size must be a positive number of pixels, got {size}")
    return next((s for s in ALLOWED_SIZES if s >= size), ALLOWED_SIZES[-1])


_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"), (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"), (b"GIF89a", 0, "image/gif"), (b"WEBP", 8, "image/webp"),
    (b"BM", 0, "image/bmp"), (b"II*\x00", 0, "image/tiff"), (b"MM\x00*", 0, "image/tiff"),
)


def sniff_media_type(data: bytes) -> str | None:
    """The image media type from the first bytes (never from a file name); None when
    the bytes are no image type a browser should render inline."""
    for magic, at, media in _MAGIC:
        if data[at:at + len(magic)] == magic:
            return media
    return None


@dataclass(frozen=True)
class Thumbnail:
    """One rendered thumbnail. ``cached`` is False when this call rendered it."""

    data: bytes
    content_hash: str
    size: int
    cached: bool

    @property
    def etag(self) -> str:
        return thumbnail_etag(self.content_hash, self.size)


def thumbnail_etag(content_hash: str, size: int) -> str:
    """The HTTP entity tag of a thumbnail: its image's content hash and its size (what
    the bytes depend on), known before the thumbnail is read."""
    return f'"{content_hash[:32]}-{size}"'


def render(data: bytes, size: int, *, quality: int = 82) -> bytes:
    """JPEG bytes of ``data`` (any image Pillow reads) fitted inside ``size``×``size``.

    Raises:
        InvalidInput: the bytes are not a readable image, or a decompression bomb.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > _MAX_SOURCE_PIXELS:
                    raise InvalidInput(f"image of {im.width}x{im.height} pixels is too large "
                                       "to render a thumbnail of")
                im.draft("RGB", (size, size))  # JPEG: decode at the nearest scale >= size
                im = ImageOps.exif_transpose(im)
                im.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
                if im.mode != "RGB":
                    im = _flatten(im)
                out = io.BytesIO()
                im.save(out, "JPEG", quality=quality, optimize=False, progressive=False)
                return out.getvalue()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InvalidInput(f"image refused as a decompression bomb: {e}") from None
    except UnidentifiedImageError:
        raise InvalidInput("the stored image is not in a format Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidInput(f"the stored image cannot be decoded: {e}") from None


def _flatten(im: Image.Image) -> Image.Image:
    """RGB on a white background (transparent PNGs would otherwise turn black)."""
    from PIL import Image

    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return im.convert("RGB")


class ThumbnailCache:
    """Rendered thumbnails on local disk, keyed by content hash and size.

    Args:
        root: the cache folder (``<workspace>/cache/thumbnails``). Thumbnails of a remote
            store are cached per host, as the blob copies are.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def path(self, content_hash: str, size: int) -> Path:
        """Where the thumbnail of ``content_hash`` at ``size`` lives.

        Raises:
            InvalidInput: ``content_hash`` is not a sha256 hex digest or ``size`` is not allowed.
        """
        if not _HASH_RE.match(content_hash):
            raise InvalidInput(f"not a content hash: {content_hash!r}")
        if size not in ALLOWED_SIZES:
            raise InvalidInput(f"thumbnail size {size} is not one of {ALLOWED_SIZES}")
        return self.root / str(size) / content_hash[:2] / f"{content_hash}.jpg"

    def get(self, content_hash: str, size: int, read_image: Callable[[str], bytes]) -> Thumbnail:
        """The thumbnail, rendered from ``read_image(content_hash)`` on a cache miss.

        One thread per process renders a given thumbnail; the others wait for it.
        """
        p = self.path(content_hash, size)
        data = _read(p)
        if data is not None:
            return Thumbnail(data, content_hash, size, cached=True)
        with self._lock(content_hash, size):
            data = _read(p)
            if data is not None:
                return Thumbnail(data, content_hash, size, cached=True)
            data = render(read_image(content_hash), size)
            _write(p, data)
        with self._locks_guard:
            self._locks.pop((content_hash, size), None)
        return Thumbnail(data, content_hash, size, cached=False)

    def _lock(self, content_hash: str, size: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((content_hash, size), threading.Lock())


def _read(p: Path) -> bytes | None:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(f"cannot read cached thumbnail: {e}", path=str(p)) from e


def _write(p: Path, data: bytes) -> None:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except OSError as e:
        raise StorageError(f"cannot write the thumbnail cache: {e}", path=str(p)) from e
