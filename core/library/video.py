"""Videos (MP4, MOV, MKV, WebM, ...) in a photo library, through PyAV (FFmpeg), when it is installed.

A video is searched as a few frames spread over its length (`VIDEO_FRAMES`, at 1/6, 2/6, ... 5/6 of it): the
indexer embeds each and keeps their mean (the "mean pooling" of frame features CLIP-based video retrieval
starts from), so a clip of a dog that walks onto a beach is found by either. The middle frame is the poster:
the grid's thumbnail and the preview. Each frame is the key frame at or before its time (a seek, no decoding
of the frames in between: a 4K clip costs a few key frames, not seconds of decoding). The picture is turned
as the file says (a phone's display matrix), non-square pixels are widened, and the capture time is the
container's (QuickTime's local `creationdate`, else `creation_time`, a UTC instant put on the local wall clock
as EXIF times are kept).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from PIL import Image

from core.errors import ImageDecodeError, ImageReadError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".3gp", ".3g2", ".mts", ".m2ts", ".mpg", ".mpeg",
    ".wmv", ".ogv", ".flv",
})
VIDEO_FRAMES = 5  # frames embedded per video; the middle one is the poster
MAX_PACKETS_PER_FRAME = 1500  # packets read looking for one decodable frame before a sample is given up
# A file names other files for some of FFmpeg's readers (playlists, concat lists): local files only, never a URL
# (no network at run time, whatever a file in a photo folder says).
_OPEN_OPTIONS = {"protocol_whitelist": "file"}
FORWARD_PACKETS = 300  # a video's budget of frames decoded past a key frame (sparse key frames; a moment)
SEEK_BACK_S = (0.0, 1.0, 4.0, 16.0)  # where a seek for a moment starts, before it, when it lands past it
SAME_TIME_S = 0.01  # a frame time read back from the library (float32) is this close to the frame's own
_NO_TIME = _dt.datetime(1971, 1, 1, tzinfo=_dt.UTC).timestamp()  # MP4's "unset" times are 1904 or 1970


def video_available() -> bool:
    """True when PyAV is installed: videos are then indexed too."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def is_video(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTENSIONS


def clock(seconds: float) -> str:
    """A time in a video as a player shows it: 0:07, 12:34, 1:02:03."""
    total = max(0, round(seconds))
    h, m, s = total // 3600, total // 60 % 60, total % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class VideoClip:
    """`frames`: upright RGB images in time order (one for a clip too short or damaged for more); `times`: each
    one's time in seconds from the start of the clip (NaN when the file gives it none); `poster`: the index of the middle one; width/height: the
    picture as shown; duration_s: None when the file does not say; taken_at: the capture time as a wall clock
    read as UTC (as decode.exif_taken_at), or None."""

    frames: list[Image.Image]
    times: list[float]
    poster: int
    width: int
    height: int
    duration_s: float | None
    taken_at: float | None

    @property
    def poster_frame(self) -> Image.Image:
        return self.frames[self.poster]


def open_video(path: str, min_side: int, max_pixels: int, frames: int = VIDEO_FRAMES,
               at_s: float | None = None) -> VideoClip:
    """Read `frames` frames of the video `path` (or, with `at_s`, the one key frame at or before that time: the
    moment a search matched), each scaled so that its shorter side is `min_side` (never up).
    ImageReadError when the file cannot be read now; ImageDecodeError when it is not a video FFmpeg reads, has no
    picture, no frame decodes, or its picture is above `max_pixels`."""
    import av

    _check_readable(path)
    try:
        with av.open(path, metadata_errors="ignore", options=_OPEN_OPTIONS) as container:
            if not container.streams.video:
                raise ImageDecodeError(f"{path}: no video track (a sound-only file?)")
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"  # frame threads would decode frames past each key frame we seek to
            width, height = _display_size(stream)
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise ImageDecodeError(f"{path}: the video picture is {width}x{height} pixels; the limit is "
                                       f"{max_pixels / 1e6:.0f} MP")
            duration = _duration_s(container, stream)
            start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            picked = (_sample(container, stream, start, duration, frames) if at_s is None
                      else _at(container, stream, start + at_s))
            if not picked:
                raise ImageDecodeError(f"{path}: no frame of the video could be decoded (damaged or cut short)")
            rotation = _rotation(picked[0])
            images = [_upright(f, width, height, min_side) for f in picked]
            times = [max(0.0, float(f.time) - start) if f.time is not None else math.nan  # NaN: not said
                     for f in picked]
            if rotation % 180:
                width, height = height, width
            taken_at = _taken_at(container.metadata) or _taken_at(stream.metadata)
    except ImageDecodeError:
        raise
    except av.error.FileNotFoundError as exc:
        raise ImageReadError(f"{path}: the file is missing (moved or deleted)") from exc
    except av.error.PermissionError as exc:  # the file was readable a moment ago: FFmpeg refused its content
        raise ImageDecodeError(f"{path}: not a video: a list of other files (an FFmpeg concat or playlist file) "
                               "FFmpeg does not open from here") from exc
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        raise ImageDecodeError(f"{path}: not a video FFmpeg reads, or one cut short") from exc
    except av.FFmpegError as exc:
        raise ImageDecodeError(f"{path}: corrupt or unreadable video: {exc}") from exc
    except MemoryError as exc:
        raise ImageDecodeError(f"{path}: too large to decode (out of memory)") from exc
    logger.debug("%s: video %dx%d, %s s, %d frames", path, width, height, duration, len(images))
    return VideoClip(images, times, len(images) // 2, width, height, duration, taken_at)


def video_duration(path: str) -> float | None:
    """The video's length in seconds from its header (nothing decoded); None when it does not say or cannot be
    read (the preview shows it; a failure here is not the caller's concern)."""
    import av

    try:
        with av.open(path, metadata_errors="ignore", options=_OPEN_OPTIONS) as container:
            if not container.streams.video:
                return None
            return _duration_s(container, container.streams.video[0])
    except (av.FFmpegError, OSError) as exc:
        logger.debug("no duration for %s: %s", path, exc)
        return None


def _check_readable(path: str) -> None:
    """The system's errors (missing, no permission) are not the file's fault; an empty file is."""
    try:
        with open(path, "rb") as f:
            empty = not f.read(1)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read: {exc}") from exc
    if empty:
        raise ImageDecodeError(f"{path}: an empty file")


def _display_size(stream: Any) -> tuple[int, int]:
    """The coded size, widened (or narrowed) by the sample aspect ratio of anamorphic video (DV, some DSLRs)."""
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    sar = stream.sample_aspect_ratio
    if sar and sar.numerator > 0 and sar.denominator > 0 and sar != 1:
        width = max(1, round(width * sar.numerator / sar.denominator))
    return width, height


def _duration_s(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:  # in AV_TIME_BASE (microseconds)
        return container.duration / 1_000_000
    return None


def _sample(container: Any, stream: Any, start: float, duration: float | None, frames: int) -> list[Any]:
    """Decoded frames at (i + 1) / (frames + 1) of the duration, each the key frame at or before its time (frames=1:
    the middle one); the first frame alone when the file has no duration or cannot seek. A seek that lands on a
    key frame taken already is a repeat, left out, unless that key frame is more than a sample's spacing before
    its sample (key frames far sparser than the samples: a re-encoded clip, x264's 10 s default, would be seen
    at its start alone): the rest are then decoded forward from there to each sample's time, within
    FORWARD_PACKETS for the whole video (a sample out of budget is left out)."""
    if not duration or duration <= 0:
        first = _next_frame(container, stream)
        return [first] if first is not None else []
    picked, seen, budget, forward = [], set(), [FORWARD_PACKETS], False
    spacing = duration / (frames + 1)
    for i in range(frames):
        target = start + duration * (i + 1) / (frames + 1)
        if forward:  # no key frame to seek to before this one: go on decoding from where the last one stopped
            frame = _forward_to(container, stream, picked[-1], target, budget)
        else:
            try:
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            except Exception as exc:  # av.FFmpegError: a file that cannot seek gives its first frame
                logger.debug("cannot seek in %s: %s", container.name, exc)
                return picked or [f for f in [_next_frame(container, stream)] if f is not None]
            frame = _next_frame(container, stream)
            if (frame is not None and frame.pts is not None and frame.pts in seen and frame.time is not None
                    and target - frame.time > spacing + SAME_TIME_S):
                forward = True
                frame = _forward_to(container, stream, frame, target, budget)
        if frame is not None and (frame.pts is None or frame.pts not in seen):  # no time stamp: cannot tell repeats
            seen.add(frame.pts)
            picked.append(frame)
    return picked


def _at(container: Any, stream: Any, t: float) -> list[Any]:
    """The frame at `t` seconds (stream time) that indexing took there: the key frame at or before `t`, decoded
    forward to `t` when `t` is past it (a frame of sparse key frames, see _sample); as a one-frame list (the first
    frame when the file cannot seek). Some files (MPEG-TS: a camcorder's .mts) land a seek on the key frame after
    its target: the seek is then made from further back."""
    frame = None
    for back in SEEK_BACK_S:
        try:
            container.seek(int((t - back) / stream.time_base), stream=stream, backward=True, any_frame=False)
        except Exception as exc:  # av.FFmpegError
            logger.debug("cannot seek in %s: %s", container.name, exc)
            break
        frame = _next_frame(container, stream)
        if frame is None or frame.time is None or frame.time <= t + SAME_TIME_S:
            if frame is None:
                return []
            at = _forward_to(container, stream, frame, t, [FORWARD_PACKETS])
            return [at if at is not None else frame]
    frame = frame if frame is not None else _next_frame(container, stream)
    return [frame] if frame is not None else []


def _forward_to(container: Any, stream: Any, frame: Any, t: float, budget: list[int]) -> Any | None:
    """`frame` (the one decoded last) when it is at `t` (or past it, or has no time), else the first frame decoded
    after it at `t` or past it (the last one, at the end of the stream); None when `budget[0]` packets (taken
    from it) run out first."""
    import av

    if frame.time is None or frame.time >= t - SAME_TIME_S:
        return frame
    last = frame
    for packet in container.demux(stream):
        if budget[0] <= 0:
            return None
        budget[0] -= 1
        try:
            decoded = packet.decode()
        except av.error.InvalidDataError:
            continue
        for f in decoded:
            if f.time is None:
                continue
            last = f
            if f.time >= t - SAME_TIME_S:
                return f
    return last


def _next_frame(container: Any, stream: Any) -> Any | None:
    """The next frame that decodes; None after MAX_PACKETS_PER_FRAME packets without one, or at the end."""
    import av

    for n, packet in enumerate(container.demux(stream)):
        if n >= MAX_PACKETS_PER_FRAME:
            return None
        try:
            decoded = packet.decode()
        except av.error.InvalidDataError:  # a damaged packet: the next one may decode
            continue
        if decoded:
            return decoded[0]
    return None


def _upright(frame: Any, width: int, height: int, min_side: int) -> Image.Image:
    """The frame as RGB at the display aspect, shorter side `min_side` (not enlarged), turned upright."""
    scale = min(1.0, min_side / max(1, min(width, height)))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    img = frame.to_image(width=w, height=h)
    turn = _rotation(frame) % 360  # counter-clockwise degrees the display matrix asks for; PIL turns the same way
    if turn in (90, 180, 270):
        img = img.transpose({90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
                             270: Image.Transpose.ROTATE_270}[turn])
    return img.convert("RGB")


def _rotation(frame: Any) -> int:
    """The counter-clockwise turn (degrees) the frame's display matrix asks for (PyAV >= 14 reads it)."""
    return int(round(getattr(frame, "rotation", 0) or 0))


def _taken_at(metadata: dict[str, str]) -> float | None:
    """The capture time, a wall clock read as UTC. QuickTime's `com.apple.quicktime.creationdate` carries the
    local time and its offset (the wall clock is kept); `creation_time` is a UTC instant (put on this machine's
    local clock, the best guess of where it was taken)."""
    local = metadata.get("com.apple.quicktime.creationdate")
    if local:
        stamp = _parse_iso(local)
        if stamp is not None:
            return _as_taken_at(stamp.replace(tzinfo=None))
    utc = metadata.get("creation_time")
    if utc:
        stamp = _parse_iso(utc)
        if stamp is not None:
            instant = stamp if stamp.tzinfo else stamp.replace(tzinfo=_dt.UTC)
            if instant.timestamp() > _NO_TIME:
                return _as_taken_at(instant.astimezone().replace(tzinfo=None))
    return None


def _parse_iso(text: str) -> _dt.datetime | None:
    text = text.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # "+0200" -> "+02:00"
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _as_taken_at(wall: _dt.datetime) -> float | None:
    taken_at = wall.replace(tzinfo=_dt.UTC).timestamp()
    return taken_at if taken_at > _NO_TIME else None


def av_version() -> str | None:
    """PyAV's version, None when it is not installed."""
    try:
        import av
    except ImportError:
        return None
    return str(av.__version__)
