"""Metrics on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.metrics import (
    boundary_prf,
    content_word_recall,
    keyword_hit_rate,
    match_boundaries,
    retrieval_recalls,
    uniform_boundaries,
)


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_retrieval_recalls_hand_made():
    images = _unit(np.eye(3))  # three unique images along the axes
    # utt0 -> image0 best (hit@1); utt1 (gold image1) is closest to image2, then image1 (hit@5 not @1);
    # utt2 (gold image2) is closest to image2.
    speech = _unit([[1.0, 0.1, 0.0], [0.0, 0.5, 1.0], [0.0, 0.2, 1.0]])
    out = retrieval_recalls(speech, images, [0, 1, 2], ks=(1, 2))
    assert out["speech_to_image"] == {"r1": pytest.approx(2 / 3), "r2": 1.0}
    # image0: utt0 ranks first -> hit@1; image1: ranking of utts by image1 score: utt1 (0.45), utt2(0.2),
    # utt0 -> its caption utt1 first -> hit@1; image2: utt1 (0.89) > utt2 (0.98)? utt2 is 0.98 -> hit@1.
    assert out["image_to_speech"]["r1"] == 1.0


def test_ties_and_nan_vectors_score_as_misses_not_hits():
    rng = np.random.default_rng(0)
    images = _unit(rng.standard_normal((20, 8)))
    gold = list(range(20)) * 3
    for speech in (np.zeros((60, 8)), np.full((60, 8), np.nan)):
        out = retrieval_recalls(speech, images, gold)
        assert out["speech_to_image"] == {"r1": 0.0, "r5": 0.0, "r10": 0.0}
        assert out["image_to_speech"]["r1"] == 0.0
    # two captions of one image tied with each other still count as a hit
    speech = _unit([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    out = retrieval_recalls(speech, _unit(np.eye(2)), [0, 0, 1], ks=(1,))
    assert out["image_to_speech"]["r1"] == 1.0 and out["speech_to_image"]["r1"] == 1.0


def test_retrieval_image_to_speech_any_caption_counts():
    images = _unit([[1.0, 0.0], [0.0, 1.0]])
    speech = _unit([[0.1, 1.0], [0.9, 0.5], [-1.0, 0.2], [1.0, 0.0]])
    # image0 ranks utts u3, u1, u0, u2: its best caption (u1) is 2nd although u0 is 3rd -> hit@2.
    # image1 ranks utts u0, u1, u2, u3: its best caption (u2) is 3rd -> hit@3 only.
    out = retrieval_recalls(speech, images, [0, 0, 1, 1], ks=(1, 2, 3))
    assert out["image_to_speech"] == {"r1": 0.0, "r2": 0.5, "r3": 1.0}
    # speech->image: u0 -> image1 first (miss@1), u1 -> image0 (hit), u2 -> image1 (hit), u3 -> image0 (miss@1)
    assert out["speech_to_image"]["r1"] == 0.5
    assert out["speech_to_image"]["r2"] == 1.0


def test_keyword_hit_rate():
    gold = [{"red", "circle", "a"}, {"blue"}]
    cands = [
        [["red", "pink"], ["square", "box"]],  # 1 of 2 keywords hits -> 0.5
        [],  # nothing fired -> 0
    ]
    assert keyword_hit_rate(cands, gold) == pytest.approx(0.25)
    assert keyword_hit_rate([[["x"], ["blue", "y"]]], [{"blue"}]) == pytest.approx(0.5)


def test_content_word_recall_ignores_stopwords_and_repeats():
    captions = ["a red circle on the left", "the the of"]
    # content words: red, circle, left; keywords repeat "red" three times: still 1 of 3
    assert content_word_recall([["red", "red", "red"], ["blue"]], captions) == pytest.approx(1 / 3)
    assert content_word_recall([["Red", "circle", "left", "a"], []], captions) == pytest.approx(1.0)


def test_boundary_matching_is_one_to_one_and_tolerant():
    # two predictions near one reference: only one may match it
    assert match_boundaries([0.50, 0.52], [0.51], tol=0.05) == 1
    # greedy must not steal: 0.30 can match 0.26 or 0.34; 0.38 can match only 0.34
    assert match_boundaries([0.30, 0.38], [0.26, 0.34], tol=0.05) == 2
    assert match_boundaries([1.0], [1.06], tol=0.05) == 0
    prf = boundary_prf([[0.5, 1.0, 1.5], [0.2]], [[0.52, 1.2], [0.21]], tol=0.05)
    assert prf["precision"] == pytest.approx(2 / 4)
    assert prf["recall"] == pytest.approx(2 / 3)
    assert prf["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_uniform_boundaries():
    assert uniform_boundaries(4, 1.0, 3.0) == pytest.approx([1.5, 2.0, 2.5, 3.0])
    assert uniform_boundaries(0, 0.0, 1.0) == []
