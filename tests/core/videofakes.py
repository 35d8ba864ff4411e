"""Tiny real video files for the tests, written with PyAV (FFmpeg's MPEG-4 encoder: fast, in every wheel)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np


def ramp_frame(i: int, w: int, h: int) -> np.ndarray:
    """Frame i: red level 10 * i everywhere (the time can be read back from a decoded frame), a green block in
    the top-left corner (the orientation can be read back)."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, :, 0] = min(250, 10 * i)
    arr[: h // 4, : w // 4, 1] = 255
    return arr


def write_video(path: Path, *, frames: int = 25, fps: int = 5, size: tuple[int, int] = (96, 64),
                rotation: int = 0, gop: int = 5, metadata: dict[str, str] | None = None,
                sar: Fraction | None = None, frame: Callable[[int, int, int], np.ndarray] = ramp_frame,
                codec: str = "mpeg4", options: dict[str, str] | None = None) -> Path:
    """A real video (a key frame every `gop` frames). `rotation`: a display matrix turning it that many degrees
    counter-clockwise when shown; `metadata`: container tags (creation_time, ...); `options`: the encoder's
    (libx264's preset, ...)."""
    import av

    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as out:  # QuickTime keys kept
        out.metadata.update(metadata or {})
        stream = out.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame(i, w, h), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_sound_only(path: Path, seconds: float = 1.0) -> Path:
    """An MP4 holding only an AAC sound track (as a voice memo named .mp4 would)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(int(16000 * seconds)) / 5.0) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
