"""ImageFeatureCache: features are computed once, reloaded from disk, and computed again for a picture
replaced at the same path."""

from __future__ import annotations

import os

import torch

from core.factory import create_model
from core.model.config import get_model_config
from tests.trainer.fixtures.data_layouts import write_jpg
from trainer.loop.feature_cache import ImageFeatureCache


def test_a_replaced_picture_is_encoded_again_and_the_rest_come_from_disk(tmp_path):
    torch.manual_seed(0)
    clip = create_model(get_model_config("tiny-test")).clip
    a, b = write_jpg(tmp_path / "a.jpg", (255, 0, 0), size=64), write_jpg(tmp_path / "b.jpg", (0, 255, 0), size=64)
    keys = [str(a), str(b), "synthetic:0:1"]
    first = ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)
    assert first.ensure(keys) == 3
    old_a, old_b = first.lookup([str(a)]), first.lookup([str(b)])
    again = ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)
    assert again.ensure(keys) == 0  # everything from disk, the synthetic key too
    write_jpg(a, (0, 0, 255), size=64)  # the dataset regenerated: another picture at the same path
    os.utime(a, ns=(1, 1))  # whatever the clock: a different stamp
    third = ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)
    assert third.ensure(keys) == 1
    fresh = ImageFeatureCache(clip, tmp_path / "fresh", loader=_loader)
    fresh.ensure([str(a)])
    assert torch.allclose(third.lookup([str(a)]), fresh.lookup([str(a)]))
    assert not torch.allclose(third.lookup([str(a)]), old_a) and torch.equal(third.lookup([str(b)]), old_b)


def test_a_damaged_cache_file_is_reported_and_rebuilt(tmp_path, caplog):
    torch.manual_seed(0)
    clip = create_model(get_model_config("tiny-test")).clip
    keys = ["synthetic:0:1", "synthetic:0:2"]
    good = ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)
    good.ensure(keys)
    good.path.write_bytes(good.path.read_bytes()[:100])  # a copy cut short
    with caplog.at_level("WARNING", logger="trainer.loop.feature_cache"):
        again = ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)
    assert str(again.path) in caplog.text and "encoded again" in caplog.text
    assert again.ensure(keys) == 2 and torch.allclose(again.lookup(keys), good.lookup(keys))
    assert ImageFeatureCache(clip, tmp_path / "cache", loader=_loader).ensure(keys) == 0  # the file was replaced


def test_every_undecodable_image_is_listed_in_one_error_and_the_others_stay_cached(tmp_path):
    import pytest

    from core.errors import DatasetError

    torch.manual_seed(0)
    clip = create_model(get_model_config("tiny-test")).clip
    paths = [write_jpg(tmp_path / f"{i}.jpg", (30 * i, 0, 0), size=64) for i in range(4)]
    for p in paths[1], paths[3]:  # truncated: the header is fine, the data stops
        p.write_bytes(p.read_bytes()[:300])
    keys = [str(p) for p in paths]
    cache = ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)
    with pytest.raises(DatasetError) as err:
        cache.ensure(keys, batch_size=2)
    msg = str(err.value)
    assert msg.startswith("2 images of 4 to encode cannot be decoded; the features of the other 2 were cached")
    assert all(f"{paths[i]} (" in msg for i in (1, 3)) and msg.lower().count("truncated") == 2
    assert str(paths[0]) not in msg and "Fix:" in msg
    for i in (1, 3):  # fixed: the re-run encodes only these two
        write_jpg(paths[i], (30 * i, 0, 0), size=64)
    again = ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)
    assert again.ensure(keys) == 2
    fresh = ImageFeatureCache(clip, tmp_path / "fresh", loader=_loader)
    fresh.ensure(keys)
    assert torch.allclose(again.lookup(keys), fresh.lookup(keys), atol=1e-6)


def _loader(key: str):
    from PIL import Image

    from trainer.data.image_file import load_image

    if key.startswith("synthetic:"):
        return Image.new("RGB", (64, 64), (9, 9, 9))
    return load_image(key)


class _Stop(Exception):
    pass


def _stopping_loader(at: int, exc: type[BaseException]):
    """_loader that raises `exc` when asked for its image number `at` (0-based)."""
    calls = []

    def load(key: str):
        calls.append(key)
        if len(calls) == at + 1:
            raise exc
        return _loader(key)

    return load


def test_ctrl_c_while_caching_saves_what_is_encoded_and_the_rerun_encodes_the_rest(tmp_path, caplog):
    """A stopped run lost every feature it had encoded (SpokenCOCO: minutes of encoding)."""
    import pytest

    torch.manual_seed(0)
    clip = create_model(get_model_config("tiny-test")).clip
    keys = [f"synthetic:0:{i}" for i in range(7)]
    cache = ImageFeatureCache(clip, tmp_path / "cache", loader=_stopping_loader(5, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt), caplog.at_level("WARNING", logger="trainer.loop.feature_cache"):
        cache.ensure(keys, batch_size=2)  # batches [0 1] [2 3] encoded; stopped loading image 5
    assert "those of 4 images are saved" in caplog.text and "encodes only the other 3" in caplog.text
    again = ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)
    assert len(again) == 4 and again.ensure(keys) == 3
    fresh = ImageFeatureCache(clip, tmp_path / "fresh", loader=_loader)
    fresh.ensure(keys)
    assert torch.allclose(again.lookup(keys), fresh.lookup(keys), atol=1e-6)


def test_a_long_encoding_run_saves_as_it_goes(tmp_path, monkeypatch):
    """Killed outright (SIGKILL, a crash): the periodic saves are kept."""
    import pytest

    import trainer.loop.feature_cache as fc

    monkeypatch.setattr(fc, "SAVE_EVERY_S", 0.0)  # after every batch
    torch.manual_seed(0)
    clip = create_model(get_model_config("tiny-test")).clip
    keys = [f"synthetic:0:{i}" for i in range(7)]
    with pytest.raises(_Stop):
        ImageFeatureCache(clip, tmp_path / "cache", loader=_stopping_loader(5, _Stop)).ensure(keys, batch_size=2)
    assert len(ImageFeatureCache(clip, tmp_path / "cache", loader=_loader)) == 4
