"""Camera raw photos: the embedded preview when large enough, else the demosaiced sensor data; orientation,
capture time, damaged files, and indexing a folder that holds one (tiny DNGs written by dngfakes)."""

from __future__ import annotations

import numpy as np
import pytest
from dngfakes import bayer_of, write_dng
from libfakes import FakeEmbedder, make_image
from PIL import Image

pytest.importorskip("rawpy")

from core.errors import ImageDecodeError, ImageReadError  # noqa: E402
from core.library import Library, ThumbnailCache, index_library  # noqa: E402
from core.library import decode as decode_mod  # noqa: E402
from core.library import scan as scan_mod  # noqa: E402
from core.library.decode import decode_image, load_rgb_sized  # noqa: E402
from core.library.exif import parse_exif_date  # noqa: E402

GREEN, RED, BLUE = (20, 200, 20), (220, 20, 20), (20, 20, 220)


def _sensor(h: int = 64, w: int = 96) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2], rgb[:, w // 2:] = RED, BLUE  # red left half, blue right half
    return bayer_of(rgb)


def _top_bottom_preview(w: int = 72, h: int = 48) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2], arr[h // 2:] = GREEN, RED  # green top half, red bottom half
    return Image.fromarray(arr)


def _dominant(pixels: np.ndarray) -> str:
    r, g, b = pixels.reshape(-1, 3).mean(axis=0)
    return max((("red", r), ("green", g), ("blue", b)), key=lambda kv: kv[1])[0]


@pytest.mark.parametrize("jpeg", [True, False])
def test_the_embedded_preview_is_used_when_large_enough(tmp_path, jpeg):
    path = write_dng(tmp_path / "a.dng", _sensor(), preview=Image.new("RGB", (72, 48), GREEN), preview_jpeg=jpeg)
    out = decode_image(path, 32)
    assert out.pixels.shape == (32, 32, 3) and _dominant(out.pixels) == "green"
    assert (out.width, out.height) == (96, 64)  # the photo's size is the sensor picture's, not the preview's
    with_thumb = decode_image(path, 32, thumbnail=True)  # a 256 px thumbnail needs more than this preview has
    assert _dominant(with_thumb.pixels[:, :12]) == "red" and with_thumb.thumb is not None


def test_a_preview_smaller_than_needed_falls_back_to_the_sensor_data(tmp_path):
    path = write_dng(tmp_path / "small.dng", _sensor(), preview=Image.new("RGB", (36, 24), GREEN))
    out = decode_image(path, 32)
    left, right = out.pixels[:, :12], out.pixels[:, -12:]
    assert _dominant(left) == "red" and _dominant(right) == "blue"  # demosaiced, not the green preview
    no_preview = decode_image(write_dng(tmp_path / "none.dng", _sensor()), 32)
    assert _dominant(no_preview.pixels[:, :12]) == "red" and _dominant(no_preview.pixels[:, -12:]) == "blue"


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_the_camera_orientation_turns_the_preview_and_the_size(tmp_path, orientation):
    path = write_dng(tmp_path / f"o{orientation}.dng", _sensor(), preview=_top_bottom_preview(),
                     orientation=orientation)
    out = decode_image(path, 32)
    turned = orientation in (6, 8)
    assert (out.width, out.height) == ((64, 96) if turned else (96, 64))
    green_side = {1: out.pixels[:8], 3: out.pixels[-8:], 6: out.pixels[:, -8:], 8: out.pixels[:, :8]}[orientation]
    assert _dominant(green_side) == "green"  # the preview's top is where the camera says it goes


def test_the_capture_time_is_read_as_exif_dates_are(tmp_path):
    path = write_dng(tmp_path / "t.dng", _sensor(), preview=_top_bottom_preview(), taken="2021:07:04 12:30:00")
    assert decode_image(path, 32).taken_at == parse_exif_date("2021:07:04 12:30:00")
    assert decode_image(write_dng(tmp_path / "u.dng", _sensor()), 32).taken_at is None


def test_without_a_time_in_the_header_the_preview_or_libraw_gives_it(tmp_path, monkeypatch):
    from core.library import raw as raw_mod

    monkeypatch.setattr(raw_mod, "_header_taken_at", lambda path: None)  # as for a CR3 or RAF: not TIFF inside
    when = parse_exif_date("2018:01:02 03:04:05")
    with_preview = write_dng(tmp_path / "p.dng", _sensor(), preview=_top_bottom_preview(), taken="2018:01:02 03:04:05")
    assert decode_image(with_preview, 32).taken_at == when  # the EXIF LibRaw writes into the preview JPEG
    no_preview = write_dng(tmp_path / "s.dng", _sensor(), taken="2018:01:02 03:04:05")
    assert decode_image(no_preview, 32).taken_at == when  # LibRaw's own, once the sensor data is unpacked
    untimed = write_dng(tmp_path / "u.dng", _sensor(), preview=_top_bottom_preview())
    assert decode_image(untimed, 32).taken_at is None  # LibRaw's "1970:01:01" in the preview means none


def test_damaged_and_fake_raw_files_are_clear_errors(tmp_path):
    good = write_dng(tmp_path / "good.dng", _sensor(), preview=_top_bottom_preview()).read_bytes()
    (tmp_path / "cut.dng").write_bytes(good[:300])
    (tmp_path / "text.nef").write_text("not a raw file at all\n" * 20)
    (tmp_path / "empty.cr2").write_bytes(b"")
    (tmp_path / "zeros.orf").write_bytes(b"\0" * 4096)
    for name in ("cut.dng", "text.nef", "empty.cr2", "zeros.orf"):
        with pytest.raises(ImageDecodeError, match=name):
            decode_image(tmp_path / name, 32)
    (tmp_path / "tiny.NEF").write_text("not raw")  # LibRaw reads past its end: not a disk error
    with pytest.raises(ImageDecodeError, match="not a camera raw file") as exc:
        decode_image(tmp_path / "tiny.NEF", 32)
    assert "Input/output" not in str(exc.value)
    with pytest.raises(ImageReadError, match="missing.arw"):
        decode_image(tmp_path / "missing.arw", 32)


def test_a_raw_picture_above_the_pixel_limit_is_refused(tmp_path):
    path = write_dng(tmp_path / "big.dng", _sensor(), preview=_top_bottom_preview())
    with pytest.raises(ImageDecodeError, match="limit"):
        decode_image(path, 32, max_pixels=96 * 64 - 1)


def test_without_rawpy_raw_files_are_not_scanned_and_say_what_to_install(tmp_path, monkeypatch):
    write_dng(tmp_path / "a.dng", _sensor())
    make_image(tmp_path / "b.jpg", 1)
    assert {e.path.rsplit("/", 1)[1] for e in scan_mod.scan_roots([tmp_path])} == {"a.dng", "b.jpg"}
    monkeypatch.setattr(scan_mod, "raw_available", lambda: False)
    monkeypatch.setattr(decode_mod, "raw_available", lambda: False)
    assert {e.path.rsplit("/", 1)[1] for e in scan_mod.scan_roots([tmp_path])} == {"b.jpg"}
    with pytest.raises(ImageDecodeError, match="rawpy"):
        decode_image(tmp_path / "a.dng", 32)


def test_upper_case_raw_extensions_are_scanned(tmp_path):
    write_dng(tmp_path / "DSC_0001.NEF", _sensor())  # a DNG's bytes under a Nikon name: the scan goes by name
    assert [e.path.rsplit("/", 1)[1] for e in scan_mod.scan_roots([tmp_path])] == ["DSC_0001.NEF"]


def test_load_rgb_sized_gives_the_preview_and_the_full_size(tmp_path):
    path = write_dng(tmp_path / "p.dng", _sensor(), preview=_top_bottom_preview(), orientation=6)
    rgb, full = load_rgb_sized(path, max_side=60)
    assert full == (64, 96) and max(rgb.size) <= 60 and rgb.size[1] > rgb.size[0]


def test_a_folder_with_raw_photos_is_indexed_with_thumbnails(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_dng(photos / "a.dng", _sensor(), preview=_top_bottom_preview(), taken="2020:01:02 03:04:05")
    make_image(photos / "b.jpg", 2)
    (photos / "broken.cr2").write_bytes(b"\0" * 100)
    emb = FakeEmbedder()
    thumbs = ThumbnailCache(tmp_path / "thumbs")
    lib = Library(tmp_path / "data", emb.identity, dim=emb.dim, cache_dir=tmp_path / "cache")
    try:
        gen = index_library(lib, [photos], emb, batch_size=4, workers=1, thumbnails=thumbs)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                report = stop.value
                break
        assert report.added == 2 and [p.rsplit("/", 1)[1] for p, _ in report.skipped] == ["broken.cr2"]
        row = lib.row_by_path(str(photos / "a.dng"))
        assert row.taken_at == parse_exif_date("2020:01:02 03:04:05") and thumbs.has(row.content_hash)
    finally:
        lib.close()
