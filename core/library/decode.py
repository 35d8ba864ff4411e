"""Decode a photo fast and safely, to the encoder's input and a grid thumbnail.

- JPEG draft mode: libjpeg decodes at 1/2, 1/4 or 1/8 scale straight to about the size we need
  (a 12 MP photo decodes ~10x faster to 500x375 than to 4000x3000).
- EXIF orientation applied; CMYK, 16-bit, palette, alpha and exotic modes become 8-bit RGB
  (transparency composited over white).
- A pixel-count guard read from the header, before any pixel is decoded (decompression bombs).
- Every failure is an ImageDecodeError with a short reason; the indexer reports it and goes on. A file that
  cannot be read now (no permission, an I/O error) is an ImageReadError: not remembered as a failure.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageDecodeError, ImageReadError
from core.library.exif import exif_orientation, exif_taken_at
from core.library.raw import RawPhoto, is_raw, open_raw, raw_available
from core.library.video import VIDEO_FRAMES, VideoClip, is_video, open_video, video_available

logger = logging.getLogger(__name__)

MAX_PIXELS = 150_000_000  # 150 MP: above any camera sensor we index; below PIL's own bomb error (179 MP)
THUMB_SIZE = 256  # longest side of a grid thumbnail, in pixels
THUMB_QUALITY = 85

_heif_registered = False


def register_heif() -> bool:
    """Let PIL open HEIC/HEIF when pillow-heif is installed. Idempotent; returns whether it is available."""
    global _heif_registered
    if not _heif_registered:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True
        except ImportError:
            return False
    return True


@dataclass
class DecodedImage:
    """A decoded photo. `pixels`: (S, S, 3) uint8, resized (shortest side S) and centre-cropped for the
    encoder; `thumb`: JPEG bytes of a <= THUMB_SIZE thumbnail or None; width/height: the original size after
    EXIF rotation; taken_at: EXIF DateTimeOriginal as a POSIX time, or None. A video also has `frames`
    (K, S, S, 3): the frames its vector is the mean of (`pixels` is the middle one, its poster), and
    `frame_times` (K,): their times in seconds from its start.
    """

    pixels: np.ndarray
    width: int
    height: int
    taken_at: float | None
    thumb: bytes | None = None
    frames: np.ndarray | None = None
    frame_times: np.ndarray | None = None

    @property
    def all_frames(self) -> np.ndarray:
        """(K, S, S, 3): the frames to embed (one for a photo)."""
        return self.frames if self.frames is not None else self.pixels[None]


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. 16/32-bit grey is scaled (not clipped); alpha is composited over white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255) else 255.0
        if mode == "F":
            lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
            arr, top = arr - lo, max(hi - lo, 1e-12)
        grey = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("LA", "La", "PA", "RGBa"):
        img, mode = img.convert("RGBA"), "RGBA"
    if mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV: PIL's conversions are right for these


def check_size(width: int, height: int, path: str, max_pixels: int = MAX_PIXELS) -> None:
    """Raise ImageDecodeError when the header's size is above `max_pixels` (or not positive)."""
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{path}: the header says {width}x{height} pixels; the file is corrupt")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{path}: {width}x{height} = {width * height / 1e6:.0f} MP is above the limit of "
            f"{max_pixels / 1e6:.0f} MP (decompression-bomb guard); downscale the file to index it"
        )


def _open(path: str, max_pixels: int) -> Image.Image:
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(
            f"{path}: too large to decode safely ({exc}); limit {max_pixels / 1e6:.0f} MP"
        ) from exc
    except UnidentifiedImageError as exc:
        size = os.path.getsize(path) if os.path.exists(path) else -1
        what = "an empty file" if size == 0 else "not an image in a format this program reads"
        raise ImageDecodeError(f"{path}: {what}") from exc
    except OSError as exc:  # with an errno: the system's (no permission, EIO); without: the format's
        error = ImageReadError if exc.errno is not None else ImageDecodeError
        raise error(f"{path}: cannot open: {exc}") from exc
    check_size(img.width, img.height, path, max_pixels)
    return img


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shortest side is `size` (bicubic, as CLIP's preprocessing), then centre-crop size x size.

    Only the crop is resampled (PIL's `box`: the source rectangle of the crop), so the memory is O(size^2)
    whatever the aspect ratio: a 40000x1 strip scaled first would be a 9 MP x 224 image (6 GB). The pixels
    are those of scaling the whole image then cropping (same sampling positions, same filter support).
    """
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))  # the size the whole image would get
    left, top = (nw - size) // 2, (nh - size) // 2
    if (nw, nh) == (w, h):
        return img.crop((left, top, left + size, top + size))
    sx, sy = w / nw, h / nh
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return img.resize((size, size), Image.Resampling.BICUBIC, box=box)


def _corrupt(path: str, exc: BaseException) -> ImageDecodeError:
    reason = str(exc) or type(exc).__name__
    if "truncated" in reason:
        reason = f"truncated file ({reason})"
    return ImageDecodeError(f"{path}: corrupt or unreadable image: {reason}")


def make_thumbnail(img: Image.Image, size: int = THUMB_SIZE) -> bytes:
    """JPEG bytes of `img` (RGB) fitted inside size x size, aspect kept."""
    import io

    thumb = img.copy()
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=THUMB_QUALITY, optimize=False)
    return buf.getvalue()


def decode_image(
    path: str | Path,
    size: int,
    *,
    draft: bool = True,
    thumbnail: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> DecodedImage:
    """Decode `path` to a (size, size, 3) uint8 RGB crop for the encoder, and a thumbnail when asked.

    With `draft` a JPEG is decoded at the smallest DCT scale whose shortest side is still >= max(size,
    THUMB_SIZE). GIF and animated WebP give their first frame; a camera raw file its embedded preview (see
    core/library/raw.py); a video a few frames (core/library/video.py). Raises ImageDecodeError with the reason.
    """
    path = str(path)
    if is_raw(path):
        return _decode_raw(path, size, thumbnail, max_pixels)
    if is_video(path):
        return _decode_video(path, size, thumbnail, max_pixels)
    if path.lower().endswith((".heic", ".heif", ".hif")):
        register_heif()
    img = _open(path, max_pixels)
    try:
        with img:
            try:
                img.seek(0)
            except EOFError:
                pass
            taken_at = exif_taken_at(img)
            orientation = exif_orientation(img)
            width, height = img.size
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            if draft and img.format == "JPEG":
                need = max(size, THUMB_SIZE if thumbnail else size)
                img.draft("RGB", (need, need))
            img.load()
            img = ImageOps.exif_transpose(img) or img
            rgb = to_rgb(img)
            thumb = make_thumbnail(rgb) if thumbnail else None
            crop = resize_center_crop(rgb, size)
            pixels = np.asarray(crop, dtype=np.uint8)
    except ImageDecodeError:
        raise
    except MemoryError as exc:  # one huge file must not end the run (threads share the process)
        raise ImageDecodeError(f"{path}: too large to decode (out of memory)") from exc
    except OSError as exc:
        if exc.errno is not None:  # the system's read error (EIO, EACCES); PIL's own decode errors have none
            raise ImageReadError(f"{path}: cannot read: {exc}") from exc
        raise _corrupt(path, exc) from exc
    except (SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise _corrupt(path, exc) from exc
    if pixels.shape != (size, size, 3):
        raise ImageDecodeError(f"{path}: decoded to shape {pixels.shape}, expected {(size, size, 3)}")
    return DecodedImage(pixels, width, height, taken_at, thumb)


def _raw_photo(path: str, min_side: int, max_pixels: int, want_side: int | None = None) -> RawPhoto:
    if not raw_available():
        raise ImageDecodeError(f"{path}: a camera raw file; install rawpy (the 'raw' extra) to read it")
    return open_raw(path, min_side, max_pixels, want_side)


def _decode_raw(path: str, size: int, thumbnail: bool, max_pixels: int) -> DecodedImage:
    photo = _raw_photo(path, max(size, THUMB_SIZE if thumbnail else size), max_pixels)
    try:
        thumb = make_thumbnail(photo.image) if thumbnail else None
        pixels = np.asarray(resize_center_crop(photo.image, size), dtype=np.uint8)
    except MemoryError as exc:
        raise ImageDecodeError(f"{path}: too large to decode (out of memory)") from exc
    return DecodedImage(pixels, photo.width, photo.height, photo.taken_at, thumb)


def _video_clip(path: str, min_side: int, max_pixels: int, frames: int = VIDEO_FRAMES,
                at_s: float | None = None) -> VideoClip:
    if not video_available():
        raise ImageDecodeError(f"{path}: a video; install PyAV (the 'video' extra) to read it")
    return open_video(path, min_side, max_pixels, frames, at_s)


def _decode_video(path: str, size: int, thumbnail: bool, max_pixels: int) -> DecodedImage:
    clip = _video_clip(path, max(size, THUMB_SIZE if thumbnail else size), max_pixels)
    try:
        thumb = make_thumbnail(clip.poster_frame) if thumbnail else None
        frames = np.stack([np.asarray(resize_center_crop(f, size), dtype=np.uint8) for f in clip.frames])
    except MemoryError as exc:
        raise ImageDecodeError(f"{path}: too large to decode (out of memory)") from exc
    return DecodedImage(frames[clip.poster], clip.width, clip.height, clip.taken_at, thumb, frames,
                        np.asarray(clip.times, np.float32))


def load_rgb(path: str | Path, max_side: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open a photo as an oriented RGB PIL image (drafted to `max_side` when given), e.g. for a thumbnail."""
    return load_rgb_sized(path, max_side, max_pixels)[0]


def load_rgb_sized(path: str | Path, max_side: int | None = None, max_pixels: int = MAX_PIXELS,
                   at_s: float | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """`load_rgb`, with the photo's full (width, height) as shown, EXIF rotation applied: for a preview. A video
    gives its poster (the middle frame, as in the grid), or with `at_s` its key frame at or before that time."""
    path = str(path)
    if is_video(path):
        clip = _video_clip(path, max_side or 1 << 30, max_pixels, frames=1, at_s=at_s)
        rgb = clip.poster_frame
        if max_side:
            rgb.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        return rgb, (clip.width, clip.height)
    if is_raw(path):  # the camera's own rendering (as in the grid) unless it is under a quarter of `max_side`
        photo = _raw_photo(path, max_side // 4 if max_side else 1 << 30, max_pixels, max_side)
        rgb = photo.image
        if max_side:
            rgb.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        return rgb, (photo.width, photo.height)
    register_heif() if path.lower().endswith((".heic", ".heif", ".hif")) else None
    img = _open(path, max_pixels)
    try:
        full = img.size[::-1] if exif_orientation(img) in (5, 6, 7, 8) else img.size
        if max_side and img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img.load()
        img = ImageOps.exif_transpose(img) or img
        rgb = to_rgb(img)
        if max_side:
            rgb.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        return rgb, full
    except MemoryError as exc:
        raise ImageDecodeError(f"{path}: too large to decode (out of memory)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{path}: corrupt or unreadable image: {exc}") from exc
