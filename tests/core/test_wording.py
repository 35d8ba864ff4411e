"""Counts in words (core.wording): one photo, not one photos; the verb agrees with the count."""

from __future__ import annotations

import pytest

from core.wording import counted, held, plural


@pytest.mark.parametrize(("n", "said"), [(0, "0 photos"), (1, "1 photo"), (2, "2 photos"), (1000, "1000 photos")])
def test_a_count_names_its_noun_in_the_singular_only_for_one(n, said):
    assert counted(n, "photo") == said


def test_irregular_plurals_and_verbs_are_given_both_forms():
    assert counted(1, "match", "matches") == "1 match" and counted(3, "match", "matches") == "3 matches"
    assert plural(1, "shows", "show") == "shows" and plural(2, "shows", "show") == "show"
    assert plural(0, "is", "are") == "are" and plural(1, "is", "are") == "is"


def test_a_library_is_counted_in_photos_and_videos_when_it_holds_videos():
    assert held(257) == "257 photos" and held(1) == "1 photo" and held(0) == "0 photos"
    assert held(257, videos=1) == "256 photos, 1 video" and held(2, videos=2) == "2 videos"
