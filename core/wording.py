"""Counts in words: "1 photo", "0 photos", "2 videos", and the verb that agrees with them ("1 photo shows",
"3 photos show"). Every message of core and app that puts a number before a noun goes through here, so that
none says "1 photos" or "0 photo" (or hedges with "photo(s)")."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """`one` when `n` is 1, else `many` (by default `one` + "s"): plural(2, "photo") = "photos",
    plural(1, "shows", "show") = "shows", plural(3, "is", "are") = "are"."""
    return one if n == 1 else (many if many is not None else one + "s")


def held(items: int, videos: int = 0) -> str:
    """What a library (or a part of it) holds, `items` of which `videos` are videos: "257 photos", "256 photos,
    1 video", "2 videos" (a library's photo count counts its videos too)."""
    photos = items - videos
    if not videos:
        return counted(items, "photo")
    return counted(videos, "video") if not photos else f"{counted(photos, 'photo')}, {counted(videos, 'video')}"


def counted(n: int, one: str, many: str | None = None) -> str:
    """`n` and its noun: counted(1, "photo") = "1 photo", counted(0, "photo") = "0 photos",
    counted(2, "match", "matches") = "2 matches"."""
    return f"{n} {plural(n, one, many)}"
