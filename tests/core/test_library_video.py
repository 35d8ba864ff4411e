"""Videos in a photo library: a few frames spread over the clip, the middle one as the poster, turned as the
file says, the container's capture time; damaged or odd files; a folder that holds one indexed and searched
by (tiny videos written by videofakes with PyAV)."""

from __future__ import annotations

import os
import time
from fractions import Fraction

import numpy as np
import pytest
from libfakes import FakeEmbedder, drain, make_image
from videofakes import write_sound_only, write_video

pytest.importorskip("av")

from core.errors import ImageDecodeError, ImageReadError, SpokenSearchError  # noqa: E402
from core.library import Library, ThumbnailCache, index_library  # noqa: E402
from core.library import decode as decode_mod  # noqa: E402
from core.library import scan as scan_mod  # noqa: E402
from core.library.decode import decode_image, load_rgb_sized  # noqa: E402
from core.library.embedder import embed_decoded, pooled  # noqa: E402
from core.library.video import VIDEO_FRAMES  # noqa: E402
from core.search import SearchEngine  # noqa: E402


def _red(pixels: np.ndarray) -> float:
    return float(pixels[..., 0].mean())


def test_frames_are_spread_over_the_clip_and_the_poster_is_the_middle_one(tmp_path):
    path = write_video(tmp_path / "walk.mp4", frames=24, fps=4, gop=5)  # 6 s; red = 10 x frame number
    out = decode_image(path, 32, thumbnail=True)
    assert out.frames is not None and out.frames.shape == (VIDEO_FRAMES, 32, 32, 3)
    # at 1, 2, 3, 4, 5 s = frames 4, 8, 12, 16, 20: each the key frame (every 5th) at or before its time
    assert np.allclose([_red(f) for f in out.frames], [0, 50, 100, 150, 200], atol=6)
    assert np.array_equal(out.pixels, out.frames[VIDEO_FRAMES // 2])  # the poster: the middle frame
    assert np.allclose(out.frame_times, [0, 1.25, 2.5, 3.75, 5.0])
    moment, _ = load_rgb_sized(path, 400, at_s=4.0)  # the key frame at or before 4 s: frame 15
    assert abs(_red(np.asarray(moment)) - 150) < 8
    assert (out.width, out.height) == (96, 64) and out.thumb is not None


def test_the_moment_of_a_camcorder_mts_is_the_frame_it_was_indexed_by(tmp_path):
    """MPEG-TS lands a seek on the key frame after its target: the moment a search names (a frame's time) must
    still show that frame, not the next key frame's."""
    written = write_video(tmp_path / "cam.ts", frames=50, fps=5, gop=5, codec="mpeg2video")  # 10 s, red = 10 x i
    path = written.rename(tmp_path / "cam.mts")
    out = decode_image(path, 32)
    assert out.frames is not None and out.frame_times is not None and len(out.frame_times) >= 3
    for t, frame in zip(out.frame_times, out.frames, strict=True):
        moment, _ = load_rgb_sized(path, 32, at_s=float(t))
        assert abs(_red(np.asarray(moment)) - _red(frame)) < 8, t


def test_frames_without_time_stamps_name_no_moment(tmp_path, monkeypatch):
    """A frame the file gives no time is not said to be at 0:00 (a search would show the clip's start as the
    moment it matched): its time is unknown (NaN), and a search names no moment for it."""
    import core.library.video as video

    sample = video._sample

    def untimed(*args, **kwargs):  # noqa: ANN002, ANN003
        frames = sample(*args, **kwargs)
        for f in frames:
            f.pts = None
        return frames

    monkeypatch.setattr(video, "_sample", untimed)
    out = decode_image(write_video(tmp_path / "walk.mp4", frames=24, fps=4, gop=5), 32)
    assert out.frame_times is not None and len(out.frame_times) == VIDEO_FRAMES
    assert np.isnan(out.frame_times).all()


def test_sparse_key_frames_are_decoded_forward_to_each_sample_within_a_budget(tmp_path, monkeypatch):
    """One key frame for the whole clip (a re-encoded clip, x264's 10 s default): the samples after the first are
    decoded forward from it, and a moment found later shows that same frame."""
    from core.library import video as video_mod

    path = write_video(tmp_path / "reencoded.mp4", frames=24, fps=4, gop=100)  # 6 s; red = 10 x frame number
    out = decode_image(path, 32)
    assert np.allclose([_red(f) for f in out.frames], [0, 80, 120, 160, 200], atol=15)  # key frame 0, then 2 ... 5 s
    assert np.allclose(out.frame_times, [0, 2, 3, 4, 5])
    moment, _ = load_rgb_sized(path, 400, at_s=3.0)
    assert abs(_red(np.asarray(moment)) - 120) < 15  # the frame indexing took at 3 s, not the key frame at 0
    monkeypatch.setattr(video_mod, "FORWARD_PACKETS", 9)  # the budget bounds what is decoded for one video
    bounded = decode_image(path, 32)
    assert len(bounded.frames) < VIDEO_FRAMES and bounded.frame_times.max() <= 2.5
    short = decode_image(write_video(tmp_path / "blink.mp4", frames=4, gop=50), 32)  # 0.8 s: 4 frames in all
    assert short.frames is not None and 1 < len(short.frames) <= 4


@pytest.mark.parametrize(("rotation", "shown", "green_corner"), [
    (0, (96, 64), "top-left"), (90, (64, 96), "bottom-left"), (-90, (64, 96), "top-right"),
    (180, (96, 64), "bottom-right"),
])
def test_the_display_matrix_turns_the_picture(tmp_path, rotation, shown, green_corner):
    path = write_video(tmp_path / "phone.mp4", rotation=rotation)
    out = decode_image(path, 32)
    assert (out.width, out.height) == shown
    rgb, full = load_rgb_sized(path, 400)
    assert full == shown and rgb.size == shown
    arr = np.asarray(rgb)
    corners = {"top-left": arr[:6, :6], "top-right": arr[:6, -6:], "bottom-left": arr[-6:, :6],
               "bottom-right": arr[-6:, -6:]}
    greenest = max(corners, key=lambda k: corners[k][..., 1].mean())
    assert greenest == green_corner


def test_non_square_pixels_are_shown_at_their_display_width(tmp_path):
    out = decode_image(write_video(tmp_path / "dv.mp4", size=(96, 64), sar=Fraction(4, 3)), 32)
    assert (out.width, out.height) == (128, 64)


def test_capture_time_utc_is_put_on_the_local_wall_clock(tmp_path, monkeypatch):
    path = write_video(tmp_path / "nye.mp4", metadata={"creation_time": "2024-12-31T23:30:00.000000Z"})
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        taken = decode_image(path, 32).taken_at
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    # 23:30 UTC is 00:30 on New Year's Day in Berlin: the wall clock, stored as if UTC (as EXIF times are)
    assert taken == 1735687800.0 + 3600


def test_quicktime_local_creation_date_keeps_its_wall_clock(tmp_path):
    path = write_video(tmp_path / "iphone.mov", metadata={
        "com.apple.quicktime.creationdate": "2024-07-14T18:05:00+0200", "creation_time": "2024-07-14T16:05:00Z"})
    assert decode_image(path, 32).taken_at == 1720980300.0  # 18:05 as if UTC


def test_unset_container_times_are_no_capture_time(tmp_path):
    path = write_video(tmp_path / "old.mp4", metadata={"creation_time": "1970-01-01T00:00:00Z"})
    assert decode_image(path, 32).taken_at is None


def test_odd_and_damaged_files_are_one_line_errors(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("not a video at all\n")
    whole = write_video(tmp_path / "whole.mp4", frames=40).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 3])
    write_sound_only(tmp_path / "memo.mp4")
    with pytest.raises(ImageDecodeError, match="empty file"):
        decode_image(tmp_path / "empty.mp4", 32)
    with pytest.raises(ImageDecodeError, match="not a video FFmpeg reads"):
        decode_image(tmp_path / "notes.mp4", 32)
    with pytest.raises(ImageDecodeError, match="no video track"):
        decode_image(tmp_path / "memo.mp4", 32)
    with pytest.raises(ImageDecodeError):  # MP4 keeps its index at the end: a cut file has none
        decode_image(tmp_path / "cut.mp4", 32)
    with pytest.raises(ImageReadError, match="cannot read"):
        decode_image(tmp_path / "gone.mp4", 32)


def test_a_picture_above_the_pixel_limit_is_refused_before_decoding(tmp_path):
    path = write_video(tmp_path / "big.mp4", size=(320, 240))
    with pytest.raises(ImageDecodeError, match="320x240 pixels; the limit"):
        decode_image(path, 32, max_pixels=320 * 240 - 1)


def test_without_pyav_videos_are_not_scanned_and_say_what_to_install(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4")
    assert ".mp4" in scan_mod.image_extensions()
    monkeypatch.setattr(scan_mod, "video_available", lambda: False)
    monkeypatch.setattr(decode_mod, "video_available", lambda: False)
    assert ".mp4" not in scan_mod.image_extensions() and ".jpg" in scan_mod.image_extensions()
    with pytest.raises(ImageDecodeError, match="install PyAV"):
        decode_image(path, 32)


def test_a_video_has_a_vector_per_frame_and_their_normalised_mean(tmp_path):
    emb = FakeEmbedder()
    photo = decode_image(make_image(tmp_path / "a.jpg", 1), 32)
    video = decode_image(write_video(tmp_path / "b.mp4", frames=24, fps=4), 32)
    frames = embed_decoded(emb, [photo, video])
    assert emb.calls == 1 and emb.images == 1 + VIDEO_FRAMES  # one batch through the encoder
    assert [f.shape for f in frames] == [(1, emb.dim), (VIDEO_FRAMES, emb.dim)]
    assert np.allclose(frames[1], emb.embed(video.frames), atol=1e-6)
    assert np.array_equal(pooled(frames[0]), frames[0][0])  # a photo's vector is its own
    mean = frames[1].mean(axis=0)
    assert np.allclose(pooled(frames[1]), mean / np.linalg.norm(mean), atol=1e-6)


def test_a_folder_with_photos_and_a_video_is_indexed_and_found_by_the_video(tmp_path):
    photos = tmp_path / "photos"
    for i in range(3):
        make_image(photos / f"p{i}.jpg", i)
    clip = write_video(photos / "holiday" / "beach.MOV", frames=30, rotation=90,
                       metadata={"creation_time": "2023-08-01T09:00:00Z"})
    (photos / "holiday" / "broken.mp4").write_text("no")
    emb = FakeEmbedder()
    thumbs = ThumbnailCache(tmp_path / "thumbs")
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    try:
        report = drain(index_library(lib, [photos], emb, thumbnails=thumbs, workers=2))
        assert report.added == 4 and [os.path.basename(p) for p, _ in report.skipped] == ["broken.mp4"]
        assert lib.count_rows()["videos"] == 1 and lib.count_rows()["indexed"] == 4
        row = lib.row_by_path(str(clip))
        assert row is not None and (row.width, row.height) == (64, 96) and row.taken_at is not None
        assert thumbs.has(row.content_hash)
        frames = embed_decoded(emb, [decode_image(clip, emb.image_size, thumbnail=True)])[0]  # as the indexer did
        query = pooled(frames)
        stored = lib.vectors_of([int(i) for i in lib.ids_under(photos)])
        assert np.allclose(stored[row.id], query, atol=2e-3)  # kept as float16
        assert max(stored, key=lambda i: float(stored[i] @ query)) == row.id  # found by its own file
        owners, vectors, times = lib.video_frames()
        assert owners.tolist() == [row.id] * VIDEO_FRAMES and np.allclose(vectors, frames, atol=2e-3)
        assert np.allclose(times, [1, 2, 3, 4, 5])  # 6 s, a key frame a second: at 1/6 ... 5/6 of it
        again = drain(index_library(lib, [photos], emb, thumbnails=thumbs, workers=2))
        assert again.added == 0 and again.updated == 0  # unchanged: nothing decoded again
    finally:
        lib.close()


class _Scenes:
    """Frames of one solid colour per half of the clip (the fake embedder tells colours apart)."""

    def __init__(self, first: tuple[int, int, int], second: tuple[int, int, int], frames: int) -> None:
        self.first, self.second, self.n = first, second, frames

    def __call__(self, i: int, w: int, h: int) -> np.ndarray:
        return np.full((h, w, 3), self.first if i < self.n // 2 else self.second, np.uint8)


BEACH, FOREST = (230, 200, 60), (20, 110, 30)


def _indexed_trip(tmp_path, photos: int):  # noqa: ANN001, ANN202
    """`photos` random photos and trip.mp4 (forest for 3 s, then beach for 3 s), indexed with the fake embedder:
    (folder, clip, embedder, library, engine); the caller closes the library."""
    folder = tmp_path / "photos"
    for i in range(photos):
        make_image(folder / f"p{i:02d}.jpg", 100 + i)
    clip = write_video(folder / "trip.mp4", frames=24, fps=4, frame=_Scenes(FOREST, BEACH, 24))
    emb = FakeEmbedder()
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    drain(index_library(lib, [folder], emb, workers=1))
    return folder, clip, emb, lib, SearchEngine(model=None, library=lib)


def test_a_video_that_shows_the_query_for_half_its_length_is_found_by_its_best_frame(tmp_path):
    """The mean of a beach half and a forest half matches neither; the search scores a video by its best frame,
    inside the filters, and forgets a deleted video's frames."""
    photos, clip, emb, lib, engine = _indexed_trip(tmp_path, photos=12)
    beach, forest = BEACH, FOREST
    try:
        row = lib.row_by_path(str(clip))
        beach_q = emb.embed(np.full((1, 32, 32, 3), beach, np.uint8))[0]
        mean_score = float(lib.vectors_of([row.id])[row.id].astype(np.float32) @ beach_q)
        hits = engine.search_vector(beach_q, top_k=3).hits
        assert hits[0].path == str(clip) and hits[0].score > 0.99 > mean_score + 0.05
        assert hits[0].at_s is not None and hits[0].at_s >= 3.0  # the beach is the clip's second half
        assert hits[0].to_json()["at_s"] == round(hits[0].at_s, 3) and hits[1].at_s is None  # a photo has none
        forest_hit = engine.search_vector(emb.embed(np.full((1, 32, 32, 3), forest, np.uint8))[0], top_k=1).hits[0]
        assert forest_hit.path == str(clip) and forest_hit.at_s is not None and forest_hit.at_s < 3.0
        assert len({h.image_id for h in hits}) == len(hits)  # the video once, not once per frame
        assert engine.search_vector(beach_q, top_k=3, roots=[photos]).hits[0].path == str(clip)
        elsewhere = tmp_path / "other"
        make_image(elsewhere / "x.jpg", 7)
        drain(index_library(lib, [photos, elsewhere], emb, workers=1))
        assert str(clip) not in [h.path for h in engine.search_vector(beach_q, top_k=20, roots=[elsewhere]).hits]
        assert str(clip) not in [h.path for h in engine.search_vector(beach_q, top_k=20, dates=(0, 1)).hits]
        clip.unlink()
        drain(index_library(lib, [photos, elsewhere], emb, workers=1))
        assert lib.video_frames()[0].size == 0
        assert all(h.path != str(clip) for h in engine.search_vector(beach_q, top_k=20).hits)
    finally:
        lib.close()


def test_a_copied_video_takes_its_frames_with_it(tmp_path):
    photos = tmp_path / "photos"
    make_image(photos / "p.jpg", 1)
    clip = write_video(photos / "a.mp4", frames=24, fps=4)
    emb = FakeEmbedder()
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    try:
        drain(index_library(lib, [photos], emb, workers=1))
        calls = emb.images
        (photos / "copy").mkdir()
        (photos / "copy" / "a.mp4").write_bytes(clip.read_bytes())
        report = drain(index_library(lib, [photos], emb, workers=1))
        assert report.added == 1 and emb.images == calls  # copied, not decoded and embedded again
        copy = lib.row_by_path(str(photos / "copy" / "a.mp4"))
        frames = lib.frames_of([copy.id, lib.row_by_path(str(clip)).id])
        (v1, t1), (v2, t2) = frames.values()
        assert np.array_equal(v1, v2) and np.array_equal(t1, t2) and t1.tolist() == [0.0, 1.25, 2.5, 3.75, 5.0]
    finally:
        lib.close()


def test_a_search_can_be_kept_to_photos_or_to_videos(tmp_path):
    photos = tmp_path / "photos"
    for i in range(4):
        make_image(photos / f"p{i}.jpg", 10 + i)
    clips = [write_video(photos / f"v{i}.mp4", frames=12, fps=4, frame=_Scenes((40 * i, 90, 200), (200, 90, 40 * i), 12))
             for i in range(2)]
    emb = FakeEmbedder()
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    try:
        drain(index_library(lib, [photos], emb, workers=1))
        engine = SearchEngine(model=None, library=lib)
        q = emb.embed(np.full((1, 32, 32, 3), (200, 90, 0), np.uint8))[0]
        both = {h.path for h in engine.search_vector(q, top_k=10).hits}
        videos = {h.path for h in engine.search_vector(q, top_k=10, kind="video").hits}
        only_photos = {h.path for h in engine.search_vector(q, top_k=10, kind="photo").hits}
        assert videos == {str(c) for c in clips} and only_photos == both - videos and len(both) == 6
        in_folder = engine.search_vector(q, top_k=10, kind="video", roots=[photos], dates=(0, None)).hits
        assert {h.path for h in in_folder} == videos
        with pytest.raises(SpokenSearchError, match="unknown kind"):
            engine.search_vector(q, kind="movie")
    finally:
        lib.close()


def test_a_videos_moment_gets_its_own_thumbnail_beside_its_poster(tmp_path):
    from PIL import Image

    path = write_video(tmp_path / "walk.mp4", frames=24, fps=4, gop=5)  # red = 10 x frame number
    thumbs = ThumbnailCache(tmp_path / "thumbs")
    poster, moment = thumbs.get(path, "abc", 64), thumbs.get(path, "abc", 64, at_s=4.0)
    assert poster != moment and thumbs.get(path, "abc", 64, at_s=4.0) == moment  # cached under its own key
    reds = [float(np.asarray(Image.open(p).convert("RGB"))[..., 0].mean()) for p in (poster, moment)]
    assert abs(reds[0] - 100) < 10 and abs(reds[1] - 150) < 10  # frame 10 (the middle), frame 15 (at 4 s)


def test_reading_the_videos_frames_does_not_scan_every_photo(tmp_path):
    """The search reads the videos' frames after every change (each batch an indexing run commits): through the
    partial index images_video (schema v4, added to a v3 library on opening), not a scan of the photos' rows."""
    import sqlite3

    from core.library import store

    photos = tmp_path / "photos"
    make_image(photos / "p.jpg", 1)
    write_video(photos / "a.mp4", frames=24, fps=4)
    emb = FakeEmbedder()
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    drain(index_library(lib, [photos], emb, workers=1))
    lib.close()
    db = tmp_path / "data" / "library.sqlite3"
    con = sqlite3.connect(db)
    con.execute("DROP INDEX IF EXISTS images_video")  # as a library written by schema v3 is
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    try:
        plan = " ".join(str(r[3]) for r in lib._reader().execute("EXPLAIN QUERY PLAN " + store.VIDEO_FRAMES_SQL))
        assert "USING INDEX images_video" in plan, plan
        owners, vectors, _ = lib.video_frames()
        assert owners.tolist() == [lib.row_by_path(str(photos / "a.mp4")).id] * len(vectors) and len(vectors) > 1
    finally:
        lib.close()


def test_a_text_file_listing_other_files_is_not_a_video_not_a_permission_problem(tmp_path):
    """FFmpeg reads a text file by its content: an ffconcat list named .mkv naming an absolute path is refused
    with EPERM ("unsafe file name"). The file itself is readable: a decode failure (remembered), not a
    permission error to retry every run."""
    clip = write_video(tmp_path / "a.mp4")
    (tmp_path / "list.mkv").write_text(f"ffconcat version 1.0\nfile {clip}\n")
    with pytest.raises(ImageDecodeError, match="a list of other files"):
        decode_image(tmp_path / "list.mkv", 32)


def test_more_like_a_videos_moment_compares_with_that_frame(tmp_path):
    photos, clip, emb, lib, engine = _indexed_trip(tmp_path, photos=1)
    try:
        row = lib.row_by_path(str(clip))
        beach_v = emb.embed(np.full((1, 32, 32, 3), BEACH, np.uint8))[0]
        at_beach, _ = engine.image_vector(row.id, at_s=4.5)
        at_forest, _ = engine.image_vector(row.id, at_s=0.5)
        whole, _ = engine.image_vector(row.id)
        assert float(at_beach @ beach_v) > 0.99 > float(whole @ beach_v) and float(at_forest @ beach_v) < 0.9
        assert engine.image_vector(lib.row_by_path(str(photos / "p00.jpg")).id, at_s=3.0)[0].shape == whole.shape
    finally:
        lib.close()


def test_photos_only_leaves_videos_out_and_takes_indexed_ones_out_of_the_library(tmp_path):
    photos, clip, emb, lib, engine = _indexed_trip(tmp_path, photos=2)
    try:
        assert lib.count_rows()["videos"] == 1
        report = drain(index_library(lib, [photos], emb, workers=1, videos=False))
        assert report.removed == 1 and lib.count_rows() == {"indexed": 2, "pending": 0, "deleted": 1, "videos": 0}
        assert clip.is_file()  # the file is not touched
        assert ".mp4" not in scan_mod.image_extensions(videos=False) and ".jpg" in scan_mod.image_extensions(False)
        calls = emb.images
        again = drain(index_library(lib, [photos], emb, workers=1))  # videos again: the same one comes back
        assert again.added == 1 and lib.count_rows()["videos"] == 1 and emb.images == calls  # by its hash: kept
    finally:
        lib.close()
