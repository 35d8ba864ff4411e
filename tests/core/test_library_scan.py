"""Scanning real folders: extensions, hidden files, unicode names, symlinks (loops, duplicates), content hash."""

from __future__ import annotations

import os

import pytest
from libfakes import make_image

from core.library.scan import content_hash, normalize_root, scan_roots


def test_scan_finds_images_recursively_and_skips_hidden(tmp_path):
    make_image(tmp_path / "a.jpg", 1)
    make_image(tmp_path / "B.JPEG", 2)
    make_image(tmp_path / "sub" / "deeper" / "c.png", 3)
    make_image(tmp_path / "sub" / "d.webp", 4)
    make_image(tmp_path / ".hidden.jpg", 5)
    make_image(tmp_path / ".cache" / "e.jpg", 6)
    (tmp_path / "notes.txt").write_text("not a photo")
    found = {os.path.relpath(e.path, tmp_path) for e in scan_roots([tmp_path])}
    assert found == {"a.jpg", "B.JPEG", os.path.join("sub", "deeper", "c.png"), os.path.join("sub", "d.webp")}
    e = next(e for e in scan_roots([tmp_path]) if e.path.endswith("a.jpg"))
    st = os.stat(tmp_path / "a.jpg")
    assert (e.size, e.mtime, e.root) == (st.st_size, st.st_mtime, normalize_root(tmp_path))


def test_unicode_and_awkward_names(tmp_path):
    names = ["Ünïcödé 照片.jpg", "space name.png", "quote'n\"dbl.jpg", "percent%_under.jpg", "emoji 🐱.webp"]
    for i, n in enumerate(names):
        make_image(tmp_path / "ordner ä" / n, i)
    found = sorted(os.path.basename(e.path) for e in scan_roots([tmp_path]))
    assert found == sorted(names)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loop_terminates_and_linked_dirs_are_followed(tmp_path):
    make_image(tmp_path / "photos" / "a.jpg", 1)
    make_image(tmp_path / "elsewhere" / "b.jpg", 2)
    os.symlink(tmp_path / "photos", tmp_path / "photos" / "loop")  # photos/loop -> photos
    os.symlink(tmp_path / "elsewhere", tmp_path / "photos" / "linked")  # followed
    os.symlink(tmp_path / "photos" / "a.jpg", tmp_path / "photos" / "a_link.jpg")  # same file twice
    os.symlink(tmp_path / "missing.jpg", tmp_path / "photos" / "dangling.jpg")
    found = sorted(os.path.relpath(e.path, tmp_path / "photos") for e in scan_roots([tmp_path / "photos"]))
    assert found == ["a.jpg", os.path.join("linked", "b.jpg")]


def test_overlapping_roots_list_a_file_once(tmp_path):
    make_image(tmp_path / "sub" / "a.jpg", 1)
    entries = scan_roots([tmp_path, tmp_path / "sub"])
    assert len(entries) == 1


def test_content_hash_covers_every_byte(tmp_path):
    big = bytearray(os.urandom(3_000_000))
    (tmp_path / "x.bin").write_bytes(bytes(big))
    (tmp_path / "copy.bin").write_bytes(bytes(big))
    h = content_hash(tmp_path / "x.bin")
    assert h == content_hash(tmp_path / "copy.bin") and len(h) == 32
    big[-5] ^= 0xFF  # a change in the tail
    (tmp_path / "tail.bin").write_bytes(bytes(big))
    assert content_hash(tmp_path / "tail.bin") != h
    big[-5] ^= 0xFF
    big[1_500_000] ^= 0x01  # one bit in the middle: same size, head and tail
    (tmp_path / "middle.bin").write_bytes(bytes(big))
    assert content_hash(tmp_path / "middle.bin") != h
    (tmp_path / "short.bin").write_bytes(bytes(big[:100_000]))  # size is hashed too
    assert content_hash(tmp_path / "short.bin") != h


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_folder_belongs_to_the_deepest_root_that_holds_it_whatever_the_scan_order(tmp_path):
    make_image(tmp_path / "all" / "a.jpg", 1)
    make_image(tmp_path / "all" / "fav" / "f.jpg", 2)
    os.symlink(tmp_path / "all" / "fav", tmp_path / "fav_link")  # a root that is a link into another root
    roots = [tmp_path / "all", tmp_path / "fav_link"]
    for order in (roots, roots[::-1]):
        alone = [e.path for r in order for e in scan_roots([r], owners=roots)]
        together = [e.path for e in scan_roots(order, owners=roots)]
        expected = [str(tmp_path / "all" / "a.jpg"), str(tmp_path / "fav_link" / "f.jpg")]
        assert sorted(alone) == sorted(together) == expected
