"""Write tiny DNG camera-raw files for tests: a TIFF whose first IFD is an optional preview (JPEG or RGB
bitmap, as cameras embed) and whose SubIFD holds 16-bit RGGB sensor data. Enough for LibRaw (rawpy) to read
the preview, the orientation, the capture time and to demosaic the raw data."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

_TYPES = {"B": 1, "A": 2, "H": 3, "I": 4, "R": 5, "r": 10}  # BYTE ASCII SHORT LONG RATIONAL SRATIONAL
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 10: 8}


def _pack(kind: str, values) -> tuple[int, int, bytes]:
    """(TIFF type, count, little-endian bytes) of a tag's values."""
    if kind == "A":
        data = values.encode("ascii") + b"\0"
        return 2, len(data), data
    if kind in "Rr":
        fmt = "<II" if kind == "R" else "<ii"
        return _TYPES[kind], len(values), b"".join(struct.pack(fmt, *v) for v in values)
    return _TYPES[kind], len(values), struct.pack(f"<{len(values)}{kind}", *values)


def _ifd(tags: dict[int, tuple[str, object]], at: int) -> tuple[bytes, dict[int, int]]:
    """An IFD placed at byte `at` (entries, next-IFD 0, then its out-of-line values). Returns (bytes, offset of
    each tag's value field) so that offsets can be patched in later."""
    n = len(tags)
    extra_at = at + 2 + 12 * n + 4
    entries, extra, fields = [struct.pack("<H", n)], b"", {}
    for tag in sorted(tags):
        kind, values = tags[tag]
        typ, count, data = _pack(kind, values)
        fields[tag] = at + 2 + 12 * len(fields) + 8
        if len(data) <= 4:
            entries.append(struct.pack("<HHI", tag, typ, count) + data.ljust(4, b"\0"))
        else:
            if len(extra) % 2:
                extra += b"\0"
            entries.append(struct.pack("<HHII", tag, typ, count, extra_at + len(extra)))
            extra += data
    return b"".join(entries) + struct.pack("<I", 0) + extra, fields


def write_dng(path: Path, raw: np.ndarray, *, preview: Image.Image | None = None, preview_jpeg: bool = True,
              orientation: int = 1, taken: str | None = None) -> Path:
    """Write `raw` ((H, W) uint16, RGGB, white level 65535) as a DNG at `path`. `preview` is embedded in IFD0
    as a JPEG (or an 8-bit RGB bitmap) when given; `orientation` is the TIFF tag (1, 3, 6, 8); `taken` is
    "YYYY:MM:DD HH:MM:SS"."""
    h, w = raw.shape
    raw_bytes = raw.astype("<u2").tobytes()
    if preview is not None:
        if preview_jpeg:
            buf = io.BytesIO()
            preview.save(buf, "JPEG", quality=90)
            image0, comp0, photo0 = buf.getvalue(), 7, 6
        else:
            image0, comp0, photo0 = np.asarray(preview.convert("RGB"), np.uint8).tobytes(), 1, 2
        pw, ph = preview.size
    else:  # a 1x1 black bitmap stands in: a DNG needs IFD0
        image0, comp0, photo0, pw, ph = b"\0\0\0", 1, 2, 1, 1
    ifd0 = {
        254: ("I", [1]), 256: ("I", [pw]), 257: ("I", [ph]), 258: ("H", [8, 8, 8]), 259: ("H", [comp0]),
        262: ("H", [photo0]), 271: ("A", "Test"), 272: ("A", "Cam"), 273: ("I", [0]), 274: ("H", [orientation]),
        277: ("H", [3]), 278: ("I", [ph]), 279: ("I", [len(image0)]), 330: ("I", [0]),
        50706: ("B", [1, 4, 0, 0]), 50707: ("B", [1, 1, 0, 0]), 50708: ("A", "Test Cam"),
        50721: ("r", [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)]),
        50728: ("R", [(1, 1), (1, 1), (1, 1)]), 50778: ("H", [21]),
    }
    if taken:
        ifd0[306] = ("A", taken)
    sub = {
        254: ("I", [0]), 256: ("I", [w]), 257: ("I", [h]), 258: ("H", [16]), 259: ("H", [1]), 262: ("H", [32803]),
        273: ("I", [0]), 277: ("H", [1]), 278: ("I", [h]), 279: ("I", [len(raw_bytes)]),
        33421: ("H", [2, 2]), 33422: ("B", [0, 1, 1, 2]), 50714: ("I", [0]), 50717: ("I", [65535]),
    }
    head = b"II*\0" + struct.pack("<I", 8)
    ifd0_bytes, f0 = _ifd(ifd0, 8)
    sub_at = 8 + len(ifd0_bytes) + (len(ifd0_bytes) % 2)
    sub_bytes, f1 = _ifd(sub, sub_at)
    image0_at = sub_at + len(sub_bytes)
    raw_at = image0_at + len(image0) + (len(image0) % 2)
    out = bytearray(head + ifd0_bytes + b"\0" * (sub_at - 8 - len(ifd0_bytes)) + sub_bytes)
    out += image0 + b"\0" * (raw_at - image0_at - len(image0)) + raw_bytes
    for field, value in ((f0[273], image0_at), (f0[330], sub_at), (f1[273], raw_at)):
        out[field:field + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(out))
    return path


def bayer_of(rgb: np.ndarray) -> np.ndarray:
    """An RGGB mosaic ((H, W) uint16) sampling an (H, W, 3) uint8 picture, so that demosaicing gives it back."""
    h, w, _ = rgb.shape
    out = np.empty((h, w), np.uint16)
    scaled = rgb.astype(np.uint16) * 257
    out[0::2, 0::2] = scaled[0::2, 0::2, 0]
    out[0::2, 1::2] = scaled[0::2, 1::2, 1]
    out[1::2, 0::2] = scaled[1::2, 0::2, 1]
    out[1::2, 1::2] = scaled[1::2, 1::2, 2]
    return out
