"""Reading image headers at import: the fast JPEG/PNG reader must agree with Pillow."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from viewfinder.services.images import (
    _fast_header,
    _pillow_header,
    exif_summary,
    inspect_image,
)


def _agree(data: bytes) -> None:
    """The fast reader and Pillow give the same format, size, orientation and EXIF."""
    fast, slow = _fast_header(data), _pillow_header(data)
    assert fast is not None
    assert fast[:4] == slow[:4]
    assert (exif_summary(fast[4]) if fast[4] is not None else None) == slow[4]


def _jpeg(mode: str = "RGB", size=(37, 21), orientation: int | None = None, big_endian: bool = False,
          **save: object) -> bytes:
    im = Image.new(mode, size)
    buf = io.BytesIO()
    kwargs = dict(save)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        exif[0x010F] = "maker"  # a second tag, so orientation is not the only entry
        data = exif.tobytes()
        if big_endian:  # Pillow writes little-endian; build the MM variant by hand
            data = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01" + \
                orientation.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"
        kwargs["exif"] = data
    im.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


CASES = {
    "baseline": _jpeg(),
    "progressive": _jpeg(progressive=True),
    "grayscale": _jpeg("L"),
    "cmyk": _jpeg("CMYK"),
    "big": _jpeg(size=(4000, 3000)),
    **{f"orientation-{o}": _jpeg(orientation=o) for o in range(1, 9)},
    **{f"orientation-{o}-MM": _jpeg(orientation=o, big_endian=True) for o in (1, 6, 8)},
}


@pytest.mark.parametrize("name", list(CASES))
def test_fast_jpeg_header_agrees_with_pillow(name: str) -> None:
    _agree(CASES[name])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "1"])
def test_fast_png_header_agrees_with_pillow(mode: str) -> None:
    buf = io.BytesIO()
    Image.new(mode, (19, 7)).save(buf, "PNG")
    _agree(buf.getvalue())


def test_unusual_files_fall_back_to_pillow() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (5, 6)).save(buf, "GIF")
    assert _fast_header(buf.getvalue()) is None
    assert inspect_image(buf.getvalue()).width == 5
    assert _fast_header(b"\xff\xd8\xff\xda\x00\x02") is None        # scan before frame
    assert _fast_header(b"\xff\xd8\x12\x34") is None                # not a marker
    with pytest.raises(ValueError, match="not a readable image"):
        inspect_image(b"\xff\xd8\xff\xe0\x00\x01garbage")


def test_orientation_swaps_width_and_height() -> None:
    info = inspect_image(_jpeg(size=(40, 10), orientation=6))
    assert (info.width, info.height) == (10, 40)


def _camera_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon\x00"
    exif[0x0110] = "EOS 5D"
    exif[0x0112] = 1
    exif[0x0132] = "2024:05:01 12:30:00"
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = "2024:05:01 12:29:58"
    ifd[0x8827] = 400
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "S", (33.0, 51.0, 36.0)
    gps[3], gps[4] = "E", (151.0, 12.0, 36.0)
    buf = io.BytesIO()
    Image.new("RGB", (16, 8)).save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_camera_fields_are_kept_as_json() -> None:
    """What a curator filters on (camera, capture time, place) comes out as plain values."""
    import json

    info = inspect_image(_camera_jpeg())
    assert info.exif is not None
    exif = json.loads(info.exif)
    assert exif["make"] == "Canon" and exif["model"] == "EOS 5D"
    assert exif["datetime"] == "2024-05-01T12:30:00"
    assert exif["datetime_original"] == "2024-05-01T12:29:58"
    assert exif["iso"] == 400
    assert exif["gps_lat"] == pytest.approx(-33.86) and exif["gps_lon"] == pytest.approx(151.21)
    _agree(_camera_jpeg())


def test_no_or_broken_exif_gives_none_and_never_fails() -> None:
    assert inspect_image(_jpeg()).exif is None
    assert exif_summary(b"Exif\x00\x00II*\x00\xff\xff\xff\x7f") is None
    assert exif_summary(b"garbage") is None
