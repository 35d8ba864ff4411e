"""Decoding real files made here: formats, EXIF rotation, modes, draft, corrupt/empty/truncated/bomb files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from libfakes import make_image
from PIL import Image, ImageFile

from core.errors import ImageDecodeError, ImageReadError
from core.library import decode as decode_mod
from core.library.decode import MAX_PIXELS, THUMB_SIZE, decode_image, exif_taken_at

S = 32


@pytest.mark.parametrize("name", ["a.jpg", "a.png", "a.webp", "a.gif", "a.bmp", "a.tiff"])
def test_formats_decode_to_encoder_crop(tmp_path, name):
    path = make_image(tmp_path / name, seed=1, size=(80, 60))
    d = decode_image(path, S, thumbnail=True)
    assert d.pixels.shape == (S, S, 3) and d.pixels.dtype == np.uint8
    assert (d.width, d.height) == (80, 60)
    thumb = Image.open(io.BytesIO(d.thumb))
    assert thumb.format == "JPEG" and max(thumb.size) <= THUMB_SIZE


def test_gif_first_frame(tmp_path):
    red, blue = Image.new("RGB", (40, 40), (255, 0, 0)), Image.new("RGB", (40, 40), (0, 0, 255))
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue], duration=100)
    px = decode_image(tmp_path / "anim.gif", S).pixels
    assert px[..., 0].mean() > 200 and px[..., 2].mean() < 50


def test_exif_orientation_is_applied(tmp_path):
    # A 60x20 image whose left half is red, stored with Orientation=6 (rotate 90 CW to display):
    # displayed, it is 20 wide and 60 tall with red on top.
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, :30] = (255, 0, 0)
    arr[:, 30:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2021:06:05 14:30:00"
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    d = decode_image(tmp_path / "rot.jpg", S, draft=False)
    assert (d.width, d.height) == (20, 60)
    full = np.asarray(Image.open(tmp_path / "rot.jpg"))
    assert full.shape[:2] == (20, 60)  # stored unrotated
    # centre crop of the displayed (rotated) image: top rows red, bottom rows blue
    top, bottom = d.pixels[: S // 4].reshape(-1, 3).mean(0), d.pixels[-S // 4 :].reshape(-1, 3).mean(0)
    assert top[0] > 150 and top[2] < 100, top
    assert bottom[2] > 150 and bottom[0] < 100, bottom
    assert d.taken_at == pytest.approx(1622903400.0)  # 2021-06-05 14:30:00 read as UTC


def test_modes_become_rgb(tmp_path):
    cmyk = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # red in CMYK
    cmyk.save(tmp_path / "cmyk.jpg")
    px = decode_image(tmp_path / "cmyk.jpg", S).pixels
    assert px[..., 0].mean() > 200 and px[..., 1].mean() < 60
    grey16 = Image.fromarray(np.full((40, 40), 40000, np.uint16))
    grey16.save(tmp_path / "g16.png")
    px = decode_image(tmp_path / "g16.png", S).pixels
    assert 150 < px.mean() < 160  # 40000/65535*255 = 155.6, not clipped to 255
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red: white over background
    rgba.save(tmp_path / "alpha.png")
    assert decode_image(tmp_path / "alpha.png", S).pixels.min() == 255
    pal = Image.new("P", (40, 40))
    pal.putpalette([0, 255, 0] + [0] * 765)
    pal.save(tmp_path / "pal.png")
    px = decode_image(tmp_path / "pal.png", S).pixels
    assert px[..., 1].min() == 255 and px[..., 0].max() == 0


def test_jpeg_draft_decodes_at_reduced_scale(tmp_path, monkeypatch):
    path = make_image(tmp_path / "big.jpg", seed=3, size=(2048, 1536), quality=90)
    seen = []
    orig = ImageFile.ImageFile.load

    def spy(self):
        out = orig(self)
        seen.append(self.size)
        return out

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    d_draft = decode_image(path, S, draft=True)
    draft_size = seen[-1]
    d_full = decode_image(path, S, draft=False)
    assert draft_size == (256, 192)  # 1/8 scale: the smallest DCT scale with shortest side >= 32
    assert seen[-1] == (2048, 1536)
    assert (d_draft.width, d_draft.height) == (2048, 1536)
    diff = np.abs(d_draft.pixels.astype(int) - d_full.pixels.astype(int)).mean()
    assert diff < 12  # the same picture


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_rejected_from_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))  # 10 gigapixels claimed in 100 bytes
    with pytest.raises(ImageDecodeError, match="too large|limit"):
        decode_image(path, S)
    # our own limit, below PIL's: 13000 x 12000 = 156 MP
    path2 = tmp_path / "big.png"
    path2.write_bytes(_png_header_only(13_000, 12_000))
    assert 13_000 * 12_000 > MAX_PIXELS
    with pytest.warns(Image.DecompressionBombWarning), \
            pytest.raises(ImageDecodeError, match=r"156 MP is above the limit of 150 MP"):
        decode_image(path2, S)  # PIL only warns below 179 MP; our guard refuses it before decoding


def test_corrupt_empty_truncated_mislabelled(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty file"):
        decode_image(tmp_path / "empty.jpg", S)
    (tmp_path / "junk.png").write_bytes(b"this is not a png" * 10)
    with pytest.raises(ImageDecodeError, match="not an image"):
        decode_image(tmp_path / "junk.png", S)
    good = make_image(tmp_path / "good.jpg", seed=4, size=(200, 150)).read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageDecodeError, match="truncated|corrupt"):
        decode_image(tmp_path / "trunc.jpg", S, draft=False)
    png_named_jpg = make_image(tmp_path / "real.png", seed=5)
    (tmp_path / "mislabelled.jpg").write_bytes(png_named_jpg.read_bytes())
    assert decode_image(tmp_path / "mislabelled.jpg", S).pixels.shape == (S, S, 3)  # content decides


def test_exif_date_absent_is_none(tmp_path):
    path = make_image(tmp_path / "plain.jpg", seed=6)
    with Image.open(path) as img:
        assert exif_taken_at(img) is None


def test_heic_when_pillow_heif_is_installed(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    from core.library.scan import scan_roots

    arr = np.zeros((40, 60, 3), np.uint8)
    arr[..., 2] = 255
    pillow_heif.from_pillow(Image.fromarray(arr)).save(tmp_path / "photo.heic", quality=90)
    assert [e.path for e in scan_roots([tmp_path])] == [str(tmp_path / "photo.heic")]
    d = decode_image(tmp_path / "photo.heic", S)
    assert (d.width, d.height) == (60, 40) and d.pixels[..., 2].mean() > 200


@pytest.mark.parametrize("shape", [(20_000, 1), (1, 20_000)])
def test_an_extreme_aspect_ratio_resamples_only_the_crop(tmp_path, monkeypatch, shape):
    arr = np.zeros((shape[1], shape[0], 3), np.uint8)
    arr[...] = (10, 200, 30)
    Image.fromarray(arr).save(tmp_path / "strip.png")  # ~100 bytes on disk: far below the pixel guard
    sizes = []
    orig = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize",
                        lambda self, size, *a, **k: sizes.append(size) or orig(self, size, *a, **k))
    d = decode_image(tmp_path / "strip.png", 224)
    assert d.pixels.shape == (224, 224, 3) and (d.width, d.height) == shape
    assert sizes and all(w * h <= 224 * 224 for w, h in sizes)  # scaled first, it was 4.5 MP x 224 (4 GB)
    assert np.abs(d.pixels.astype(int) - (10, 200, 30)).max() <= 1


def test_out_of_memory_while_decoding_is_a_decode_error(tmp_path, monkeypatch):
    path = make_image(tmp_path / "a.png", seed=1)

    def oom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(decode_mod, "resize_center_crop", oom)
    with pytest.raises(ImageDecodeError, match="too large to decode"):
        decode_image(path, S)


def test_a_file_that_cannot_be_read_now_is_a_read_error_not_a_bad_image(tmp_path, monkeypatch):
    path = make_image(tmp_path / "a.png", seed=1)
    (tmp_path / "cut.png").write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ImageDecodeError) as bad:
        decode_image(tmp_path / "cut.png", S)
    assert not isinstance(bad.value, ImageReadError)  # the content's fault: remembered by the indexer

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(ImageReadError, match="Permission denied"):
        decode_image(path, S)
