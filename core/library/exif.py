"""What a photo's EXIF says about when it was taken and which way is up; malformed EXIF never fails a photo."""

from __future__ import annotations

import datetime as _dt

from PIL import Image

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_ORIENTATION = 0x0112


def parse_exif_date(value: object) -> float | None:
    """An EXIF date ("YYYY:MM:DD HH:MM:SS") as POSIX seconds, None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        dt = _dt.datetime.strptime(value.strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return dt.replace(tzinfo=_dt.UTC).timestamp()  # camera local time, kept as-is (no zone in EXIF 2.2)


def exif_taken_at(img: Image.Image) -> float | None:
    """EXIF DateTimeOriginal (else DateTime) as POSIX seconds, reading the camera's wall clock as UTC."""
    try:
        exif = img.getexif()
    except Exception:  # malformed EXIF must not fail the photo
        return None
    if not exif:
        return None
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    return parse_exif_date(sub.get(_DATETIME_ORIGINAL)) or parse_exif_date(exif.get(_DATETIME))


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright); 1 when the EXIF is missing or malformed."""
    try:
        return int(img.getexif().get(_ORIENTATION, 1))
    except Exception:  # malformed EXIF must not fail the photo
        return 1


def wall_clock_instant(taken_at: float) -> float:
    """The POSIX time of a capture time as this machine's local clock reads it: EXIF holds the camera's wall
    clock (stored here as if it were UTC), file times are true instants; sorting or showing the two together
    needs them in one kind."""
    try:
        wall = _dt.datetime.fromtimestamp(taken_at, _dt.UTC).replace(tzinfo=None)
        return wall.timestamp()  # a naive datetime is read as local time
    except (OverflowError, OSError, ValueError):  # a date the platform cannot hold: left as it is
        return taken_at
