"""Camera raw photos (CR2, CR3, NEF, ARW, RAF, DNG, ...) through LibRaw, when rawpy is installed.

A raw file carries the camera's own JPEG rendering of the shot (its preview): we use it when it is large enough,
as rclip does (rclip PR #285: >3x faster than demosaicing, and the colours the photographer saw on the camera).
Only a file without a usable preview is demosaiced, at half size (LibRaw's 2x2 binning: fast, sharp enough).
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
import os
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from core.errors import ImageDecodeError, ImageReadError
from core.library.exif import exif_orientation, exif_taken_at

logger = logging.getLogger(__name__)

RAW_EXTENSIONS = frozenset({
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".kdc", ".mef", ".mos", ".mrw",
    ".nef", ".nrw", ".orf", ".pef", ".raf", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
})  # ".raw" left out: too many non-photo files share it
_NO_TIME = 2 * 86400.0  # LibRaw's time 0 (none recorded), as a wall clock in any time zone: 1970-01-01 +- 1 day
_FLIP_TO_TRANSPOSE = {  # LibRaw's sizes.flip: 3 = 180 degrees, 5 = 90 counter-clockwise, 6 = 90 clockwise
    3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270,
}


def raw_available() -> bool:
    """True when rawpy (LibRaw) is installed: camera raw photos are then indexed too."""
    try:
        import rawpy  # noqa: F401
    except ImportError:
        return False
    return True


def is_raw(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in RAW_EXTENSIONS


@dataclass
class RawPhoto:
    """`image`: RGB, turned upright; width/height: the photo's full size as shown (sensor picture, turned);
    taken_at: the capture time (camera wall clock read as UTC, as decode.exif_taken_at), or None."""

    image: Image.Image
    width: int
    height: int
    taken_at: float | None
    source: str  # "preview" (the camera's embedded JPEG or bitmap) or "sensor" (demosaiced)


def _header_taken_at(path: str) -> float | None:
    """The capture time in the file's TIFF header (CR2, NEF, ARW, DNG, PEF, ORF... are TIFF inside), read by
    Pillow without touching the picture. LibRaw's own time (`raw.other`) would unpack the whole sensor data."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's complaints about a camera's private tags
            with Image.open(path) as img:
                return exif_taken_at(img)
    except Exception:  # not TIFF-based (CR3, RAF, RW2) or a header Pillow cannot parse: no time from here
        return None


def _libraw_taken_at(raw) -> float | None:
    """LibRaw's capture time: free once the sensor data is unpacked. rawpy gives the wall clock, naive."""
    stamp = raw.other.timestamp
    if not isinstance(stamp, _dt.datetime):
        return None
    taken_at = stamp.replace(tzinfo=_dt.UTC).timestamp()
    return taken_at if taken_at > _NO_TIME else None


def _preview(raw, flip: int, draft_side: int) -> tuple[Image.Image, float | None] | None:
    """The embedded preview as an upright RGB image with the capture time in its EXIF (or None), or None when
    the file has no preview LibRaw can give. A JPEG is decoded at the smallest DCT scale that keeps its shorter
    side >= `draft_side` (a full-size 24 MP preview at 1/8 for the index)."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    taken_at = None
    if thumb.format == rawpy.ThumbFormat.JPEG:  # LibRaw puts its own EXIF header on it, with the file's time
        img = Image.open(io.BytesIO(thumb.data))
        taken_at = exif_taken_at(img)
        taken_at = taken_at if taken_at is not None and taken_at > _NO_TIME else None
        img.draft("RGB", (draft_side, draft_side))
        img.load()
        if exif_orientation(img) != 1:  # the JPEG says how to turn itself
            return ImageOps.exif_transpose(img).convert("RGB"), taken_at
    else:
        img = Image.fromarray(thumb.data)
    turn = _FLIP_TO_TRANSPOSE.get(flip)
    return (img.transpose(turn) if turn is not None else img).convert("RGB"), taken_at


def open_raw(path: str, min_side: int, max_pixels: int, want_side: int | None = None) -> RawPhoto:
    """Read the camera raw file `path`: its embedded preview when its shorter side is >= `min_side`, else its
    sensor data demosaiced at half size. A JPEG preview is decoded no smaller than `want_side` (default
    `min_side`) where it is that large. ImageReadError when the file cannot be read now, ImageDecodeError when
    it is not a raw file LibRaw reads, is damaged, or its picture is above `max_pixels`."""
    import rawpy

    try:
        with open(path, "rb") as f:  # the system's errors (missing, no permission) are not the file's fault
            empty = not f.read(1)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read: {exc}") from exc
    if empty:
        raise ImageDecodeError(f"{path}: an empty file")
    try:
        with rawpy.imread(path) as raw:
            sizes = raw.sizes
            width, height = sizes.width, sizes.height
            if sizes.flip in (5, 6):
                width, height = height, width
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise ImageDecodeError(f"{path}: the raw picture is {width}x{height} pixels; the limit is "
                                       f"{max_pixels / 1e6:.0f} MP")
            taken_at = _header_taken_at(path)
            preview = _preview(raw, sizes.flip, max(min_side, want_side or 0))
            if preview is not None and min(preview[0].size) >= min_side:
                image, source = preview[0], "preview"
                taken_at = taken_at if taken_at is not None else preview[1]
            else:
                image = Image.fromarray(raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8))
                source = "sensor"
                taken_at = taken_at if taken_at is not None else _libraw_taken_at(raw)
    except rawpy.LibRawFileUnsupportedError as exc:
        raise ImageDecodeError(f"{path}: not a camera raw file LibRaw {libraw_version()} reads") from exc
    except rawpy.LibRawIOError as exc:  # the file read fine above: LibRaw ran off its end looking for a header
        raise ImageDecodeError(f"{path}: not a camera raw file LibRaw {libraw_version()} reads, or one cut "
                               "short") from exc
    except rawpy.LibRawTooBigError as exc:
        raise ImageDecodeError(f"{path}: the raw picture is too large to decode ({exc})") from exc
    except (rawpy.LibRawError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # LibRaw's, the JPEG's
        raise ImageDecodeError(f"{path}: corrupt or unreadable raw file: {_reason(exc)}") from exc
    logger.debug("%s: raw %dx%d from its %s (%dx%d)", path, width, height, source, *image.size)
    return RawPhoto(image, width, height, taken_at, source)


def _reason(exc: BaseException) -> str:
    """LibRaw's errors carry bytes (b'Input/output error'): their text."""
    arg = exc.args[0] if exc.args else ""
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(exc)
    return text or type(exc).__name__


def libraw_version() -> str | None:
    """LibRaw's version ("0.22.2"), None without rawpy."""
    try:
        import rawpy
    except ImportError:
        return None
    return ".".join(str(v) for v in rawpy.libraw_version)
