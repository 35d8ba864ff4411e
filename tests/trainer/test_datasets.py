"""Dataset readers on miniature fixtures in the published layouts; missing files listed up front."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import AudioDecodeError, DatasetError
from trainer.data import read_flickr8k, read_manifest, read_spokencoco
from trainer.data.records import MAX_LISTED
from trainer.data.torch_dataset import SpeechImageDataset, collate_speech_image

sys.path.insert(0, str(Path(__file__).parent))
from fixtures.data_layouts import FLICKR_IMAGES, make_flickr8k, make_manifest, make_spokencoco  # noqa: E402


def test_manifest_reader(tmp_path: Path) -> None:
    made = make_manifest(tmp_path, n_images=3, captions_per_image=2)
    utts = read_manifest(tmp_path)
    assert len(utts) == 6
    assert [u.split for u in utts[::2]] == ["train", "val", "test"]
    u = utts[0]
    assert u.audio_path == made["wavs"][0] and u.image_path == made["images"][0] and u.image_id == 0
    assert [w.word for w in u.words or []] == ["a", "red", "circle"] and u.n_words == 3
    assert [x.image_id for x in read_manifest(tmp_path, split="test")] == [2, 2]
    with pytest.raises(DatasetError, match=r"no utterance in split 'nope' \(its splits: test, train, val\)"):
        read_manifest(tmp_path, split="nope")


def test_manifest_missing_files_are_listed_together(tmp_path: Path) -> None:
    made = make_manifest(tmp_path, n_images=3)
    made["wavs"][1].unlink()
    made["images"][2].unlink()
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert msg.startswith("2 files")
    assert str(made["wavs"][1]) in msg and str(made["images"][2]) in msg
    assert "Fix: replace those files, or fix or remove their lines in the manifest" in msg  # a user's own pairs too


def test_empty_or_undecodable_files_are_listed_before_training(tmp_path: Path) -> None:
    made = make_manifest(tmp_path, n_images=3)
    made["wavs"][0].write_bytes(b"")
    made["wavs"][1].write_bytes(b"RIFF not really a wave file")
    made["images"][2].write_bytes(b"\x89PNG but not really")
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert msg.startswith("3 files") and "empty file" in msg and "cannot be read as audio" in msg
    assert f"image {made['images'][2]} (cannot be read as image" in msg


def test_truncated_audio_and_png_are_listed_before_training(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    made = make_manifest(tmp_path, n_images=3)
    wav = made["wavs"][0].read_bytes()
    made["wavs"][0].write_bytes(wav[:44 + 2000])  # 0.06 s left of 0.5 s; its words run to 0.45 s
    png = made["images"][1]
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert msg.startswith("2 files") and "shorter than its word times (0.45 s): truncated?" in msg
    assert f"image {png} (cannot be read as image" in msg


def test_audio_too_long_to_load_is_listed_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.data.records as records

    made = make_manifest(tmp_path, n_images=2)
    monkeypatch.setattr(records, "MAX_AUDIO_S", 0.3)  # the fixture's clips are 0.5 s; the real limit is 10 min
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{len(made['wavs'])} files") and "min long, above the 0 min" in msg
    assert f"audio {made['wavs'][0]}" in msg


def _noise_jpeg(path: Path, seed: int, size: int = 128) -> bytes:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, "JPEG")
    return path.read_bytes()


def test_truncated_jpegs_and_damaged_flac_are_listed_before_training(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    made = make_manifest(tmp_path, n_images=3)
    for k in (0, 2):  # header intact, data cut at a third (a copy that stopped)
        data = _noise_jpeg(made["images"][k], k)
        made["images"][k].write_bytes(data[: len(data) // 3])
    padded = _noise_jpeg(made["images"][1], 1)  # a good one, padded after its end marker as some cameras do
    made["images"][1].write_bytes(padded + b"\0" * 1000)
    flac = made["wavs"][3].with_suffix(".flac")  # a FLAC whose coded frames are damaged: its header is fine
    sf.write(flac, (0.1 * np.random.default_rng(0).standard_normal(16000)).astype("float32"), 16000, format="FLAC")
    data = bytearray(flac.read_bytes())
    for i in range(len(data) // 3, len(data), 7):
        data[i] = (data[i] * 31 + 7) % 256
    flac.write_bytes(bytes(data))
    lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    lines[3]["audio"] = str(flac.relative_to(tmp_path))
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert msg.startswith("3 files"), msg
    assert f"image {made['images'][0]} (cannot be read as image: image file is truncated" in msg
    assert f"image {made['images'][2]} (cannot be read as image: image file is truncated" in msg
    assert f"audio {flac} (cannot be read as audio:" in msg and str(made["images"][1]) not in msg


def test_a_jpeg_with_data_after_its_end_marker_is_decoded_and_passes(tmp_path: Path) -> None:
    made = make_manifest(tmp_path, n_images=1)
    data = _noise_jpeg(made["images"][0], 0)
    made["images"][0].write_bytes(data + bytes(range(256)) * 64)  # 16 KiB appended (a 'motion photo' trailer)
    assert len(read_manifest(tmp_path)) == 2


def test_manifest_bad_bytes_text_and_word_times_are_malformed_lines(tmp_path: Path) -> None:
    make_manifest(tmp_path, n_images=1)
    good = json.loads((tmp_path / "manifest.jsonl").read_text().splitlines()[0])
    lines = [json.dumps({**good, "text": None}), json.dumps({**good, "text": "  "}),
             json.dumps({**good, "words": [{"word": "x", "start_s": 0.9, "end_s": 0.1}]}),
             json.dumps({**good, "words": [{"word": "x", "start_s": float("nan"), "end_s": 0.1}]})]
    with open(tmp_path / "manifest.jsonl", "ab") as f:
        f.write(("\n".join(lines) + "\n").encode() + b'{"text": "caf\xe9"}\n')
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert msg.startswith("5 lines") and "line 3: ValueError: text must be a non-empty string, not None" in msg
    assert "line 5: ValueError: word 'x' has start_s 0.9 and end_s 0.1" in msg and "line 7: not UTF-8" in msg


def test_manifest_malformed_lines_and_absent_manifest(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no manifest at"):
        read_manifest(tmp_path)
    make_manifest(tmp_path, n_images=1)
    with open(tmp_path / "manifest.jsonl", "a") as f:
        f.write("{not json\n" + json.dumps({"audio": "x.wav"}) + "\n")
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    assert "line 3" in str(err.value) and "line 4: missing keys: image, text" in str(err.value)
    assert "KeyError" not in str(err.value)


def test_manifest_image_ids_without_collisions(tmp_path: Path) -> None:
    made = make_manifest(tmp_path, n_images=3)
    lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    for d in lines:  # keep the first image's explicit id 0, drop the others': they get new ones
        if d["image_id"] != 0:
            del d["image_id"]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    ids = {u.image_path: u.image_id for u in read_manifest(tmp_path)}
    assert ids[made["images"][0]] == 0 and len(set(ids.values())) == 3
    lines[-1]["image_id"] = 0  # a second image under id 0
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    with pytest.raises(DatasetError, match="image_id 0 is used for"):
        read_manifest(tmp_path)


def test_one_image_file_written_two_ways_is_one_image(tmp_path: Path) -> None:
    made = make_manifest(tmp_path, n_images=2)
    lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    lines[1]["image"] = str(made["images"][0])  # line 1's picture, written absolute
    lines[2]["image"] = "images/../images/" + Path(lines[2]["image"]).name  # line 3's, written round about
    for with_ids in (False, True):  # without image_id, and with the same explicit id on both spellings
        for d in lines:
            d.pop("image_id", None)
            if with_ids:
                d["image_id"] = int(Path(d["image"]).stem)
        (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
        utts = read_manifest(tmp_path)
        assert [u.image_id for u in utts] == [0, 0, 1, 1], with_ids
        assert [u.image_path for u in utts] == [made["images"][0]] * 2 + [made["images"][1]] * 2
    lines[3]["image"] = str(made["images"][0])  # another file under id 1, written absolute: still refused
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    with pytest.raises(DatasetError, match="line 4: image .* has image_id 1 here and 0 before"):
        read_manifest(tmp_path)


def test_one_image_file_reached_through_symlinks_is_one_image(tmp_path: Path) -> None:
    made = make_manifest(tmp_path, n_images=2)
    (tmp_path / "alias.png").symlink_to(made["images"][0])  # a link to the file
    (tmp_path / "pictures").symlink_to(tmp_path / "images", target_is_directory=True)  # a link to its folder
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")  # a broken link: named as written
    lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    lines[1]["image"] = "alias.png"
    lines[2]["image"] = "pictures/" + Path(lines[2]["image"]).name
    for d in lines:
        d.pop("image_id", None)
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    utts = read_manifest(tmp_path)
    assert [u.image_id for u in utts] == [0, 0, 1, 1]
    assert [u.image_path for u in utts] == [made["images"][0]] * 2 + [made["images"][1]] * 2
    ds = SpeechImageDataset(utts)
    assert ds.image_keys() == sorted({str(p) for p in made["images"]})  # one gallery vector per image
    lines[3]["image"] = "gone.png"
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    with pytest.raises(DatasetError, match="gone.png"):
        read_manifest(tmp_path)


def test_long_lists_are_cut(tmp_path: Path) -> None:
    lines = [{"audio": f"a{i}.wav", "image": f"i{i}.png", "text": "x"} for i in range(30)]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert msg.startswith("60 files") and f"and {60 - MAX_LISTED} more" in msg
    assert msg.count("(missing)") == MAX_LISTED


@pytest.mark.parametrize("caption_format", ["token", "captions.txt"])
def test_flickr8k_reader(tmp_path: Path, caption_format: str) -> None:
    make_flickr8k(tmp_path, captions_per_image=2, caption_format=caption_format)
    utts = read_flickr8k(tmp_path)
    assert len(utts) == 8
    assert {u.split for u in utts} == {"train", "val", "test"}
    first = utts[0]
    assert first.image_path == tmp_path / "Images" / FLICKR_IMAGES["train"][0]
    assert first.audio_path == tmp_path / "flickr_audio" / "wavs" / (
        FLICKR_IMAGES["train"][0][:-4] + "_0.wav"
    )
    assert first.text == "a dog number 0 runs in the train park"  # lower case, trailing " ." removed
    assert first.words is not None and [w.word for w in first.words] == ["a", "dog"]
    assert first.words[1].start_s == pytest.approx(0.16) and first.words[1].end_s == pytest.approx(0.28)
    names = sorted(n for ns in FLICKR_IMAGES.values() for n in ns)  # ids = index in sorted names
    assert {u.image_id for u in utts if u.image_path.name == names[2]} == {2}
    test = read_flickr8k(tmp_path, split="test")
    assert len(test) == 2 and all(u.split == "test" for u in test)


def test_flickr8k_id_pairs_and_missing(tmp_path: Path) -> None:
    made = make_flickr8k(tmp_path, with_id_pairs=True, with_ctm=False)
    utts = read_flickr8k(tmp_path, split="train")
    assert all(u.image_id >= 100 for u in utts) and all(u.words is None for u in utts)
    made["wavs"][0].unlink()
    made["images"][-1].unlink()  # a test image
    with pytest.raises(DatasetError) as err:
        read_flickr8k(tmp_path)
    msg = str(err.value)
    assert str(made["wavs"][0]) in msg and str(made["images"][-1]) in msg and "flickr_audio.tar.gz" in msg
    read_flickr8k(tmp_path, split="val")  # the other splits stay usable


def test_flickr8k_published_image_folder_and_bad_text_files(tmp_path: Path) -> None:
    make_flickr8k(tmp_path, captions_per_image=2)
    (tmp_path / "Images").rename(tmp_path / "Flicker8k_Dataset")  # as Flickr8k_Dataset.zip unpacks (sic)
    utts = read_flickr8k(tmp_path)
    assert len(utts) == 8 and all(u.image_path.parent.name == "Flicker8k_Dataset" for u in utts)
    ctm = next(tmp_path.rglob("flickr_8k.ctm"))
    ctm.write_text(ctm.read_text().replace(" 0.05 ", " 0.0x ", 1))
    with pytest.raises(DatasetError, match=r"flickr_8k\.ctm line 1 has no numeric start and duration"):
        read_flickr8k(tmp_path)
    ctm.write_bytes(b"caf\xe9 1 0.1 0.1 A\n")
    with pytest.raises(DatasetError, match=r"flickr_8k\.ctm is not UTF-8 text"):
        read_flickr8k(tmp_path)


def test_flickr8k_listed_images_without_captions_are_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from fixtures.data_layouts import write_jpg

    make_flickr8k(tmp_path, captions_per_image=2)
    extra = [f"99999999{k}_nocaption.jpg" for k in range(7)]
    for name in extra:
        write_jpg(tmp_path / "Images" / name)
    with (tmp_path / "Flickr_8k.testImages.txt").open("a") as f:
        f.write("".join(n + "\n" for n in extra))
    with caplog.at_level("WARNING", logger="trainer.data.flickr8k"):
        utts = read_flickr8k(tmp_path, "test")
    assert len(utts) == 2
    assert "7 image(s) of the Flickr8k split list(s) have no caption" in caplog.text
    assert ", ".join(extra[:5]) + ", ..." in caplog.text and extra[5] not in caplog.text
    (tmp_path / "Flickr_8k.testImages.txt").write_text("".join(n + "\n" for n in extra))  # none captioned
    with pytest.raises(DatasetError, match=r"no Flickr8k utterance in split test \(Flickr_8k.testImages.txt\)"):
        read_flickr8k(tmp_path)  # every split: the train and val ones are fine, the test one is empty


def test_flickr8k_captions_follow_the_files_numbers_not_their_position(tmp_path: Path) -> None:
    """The audio of caption `<img>.jpg#<n>` is `<img>_<n>.wav` and its alignment `<img>.jpg#<n>` (wav2capt.txt:
    `<img>_<n>.wav <img>.jpg #<n>`): a caption file with gaps or out of order (a filtered or re-sorted copy) paired
    each caption with the wav and words of its position instead."""
    from fixtures.data_layouts import write_jpg, write_wav

    img = "1000268201_693b08cb0e.jpg"
    (tmp_path / "Flickr8k_text").mkdir()
    (tmp_path / "Flickr8k_text" / "Flickr8k.token.txt").write_text(
        f"{img}#3\tA little girl climbing into a wooden playhouse .\n"
        f"{img}#0\tA child in a pink dress is climbing up a set of stairs in an entry way .\n"
        f"{img}#4\tA little girl in a pink dress going into a wooden cabin .\n")  # no #1, #2: a filtered copy
    for split in ("train", "dev", "test"):
        (tmp_path / "Flickr8k_text" / f"Flickr_8k.{split}Images.txt").write_text(f"{img}\n" if split == "train" else
                                                                               "")
    write_jpg(tmp_path / "Flicker8k_Dataset" / img)
    for n in (0, 3, 4):
        write_wav(tmp_path / "flickr_audio" / "wavs" / f"{img[:-4]}_{n}.wav", seed=n)
    (tmp_path / "flickr_audio" / "flickr_8k.ctm").write_text(
        f"{img}#0 1 0.12 0.08 A\n{img}#0 1 0.20 0.06 CHILD\n{img}#3 1 0.05 0.10 A\n{img}#3 1 0.15 0.10 LITTLE\n"
        f"{img}#4 1 0.10 0.10 A\n")
    utts = read_flickr8k(tmp_path, "train")
    got = {u.audio_path.name: (u.text.split()[:3], [w.word for w in u.words or []]) for u in utts}
    assert got == {f"{img[:-4]}_0.wav": (["a", "child", "in"], ["a", "child"]),
                   f"{img[:-4]}_3.wav": (["a", "little", "girl"], ["a", "little"]),
                   f"{img[:-4]}_4.wav": (["a", "little", "girl"], ["a"])}
    assert [u.audio_path.name[-5] for u in utts] == ["0", "3", "4"]  # in the file's numbers' order


def test_flickr8k_wrong_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a Flickr8k Audio root: missing Flickr8k.token.txt"):
        read_flickr8k(tmp_path)


def test_spokencoco_ksplit(tmp_path: Path) -> None:
    made = make_spokencoco(tmp_path)
    utts = read_spokencoco(tmp_path)
    assert len(utts) == 12 and [u.split for u in utts[::4]] == ["train", "val", "test"]
    u = utts[0]
    assert u.image_id == 0 and u.text == "a cat on a mat 0" and u.voice == "SPK0" and u.words is None
    assert u.audio_path == made["wavs"][0] and u.image_path == made["images"][0]
    assert {x.image_id for x in read_spokencoco(tmp_path, split="test")} == {20, 21}
    made["wavs"][3].unlink()
    with pytest.raises(DatasetError, match=r"^1 file of the SpokenCOCO \(.*\) dataset is missing or unreadable:"):
        read_spokencoco(tmp_path)


def test_spokencoco_original_ids_from_filenames(tmp_path: Path) -> None:
    make_spokencoco(tmp_path, prefix="SpokenCOCO")
    utts = read_spokencoco(tmp_path, split_prefix="SpokenCOCO")
    assert {u.image_id for u in utts if u.split == "val"} == {1009, 1010}
    with pytest.raises(DatasetError, match="SpokenCOCO_test.json"):
        read_spokencoco(tmp_path, split="test", split_prefix="SpokenCOCO")
    # a plain download has only the original files: read without naming the prefix (the trainer's way)
    assert [(u.image_id, u.audio_path) for u in read_spokencoco(tmp_path)] == [(u.image_id, u.audio_path)
                                                                              for u in utts]
    with pytest.raises(DatasetError, match="SpokenCOCO_test.json"):
        read_spokencoco(tmp_path, split="test")


def test_spokencoco_prefers_the_karpathy_split_where_both_are_present(tmp_path: Path) -> None:
    make_spokencoco(tmp_path)
    make_spokencoco(tmp_path, prefix="SpokenCOCO")
    assert {u.image_id for u in read_spokencoco(tmp_path, split="test")} == {20, 21}


def test_spokencoco_non_numeric_reassign_id_is_a_dataset_error(tmp_path: Path) -> None:
    make_spokencoco(tmp_path)
    path = tmp_path / "SpokenCOCO" / "SpokenCOCO_ksplit_val.json"
    data = json.loads(path.read_text())
    entries = data["data"] if isinstance(data, dict) else data
    entries[0]["reassign_id"] = "abc"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="malformed.*reassign_id"):
        read_spokencoco(tmp_path)


def test_spokencoco_unreadable_json(tmp_path: Path) -> None:
    make_spokencoco(tmp_path)
    (tmp_path / "SpokenCOCO" / "SpokenCOCO_ksplit_val.json").write_text("{broken")
    with pytest.raises(DatasetError, match="SpokenCOCO_ksplit_val.json is not a readable"):
        read_spokencoco(tmp_path)


def test_torch_dataset_crop_and_collate(tmp_path: Path) -> None:
    make_manifest(tmp_path, n_images=2, captions_per_image=1)  # 0.5 s wavs, words up to 0.45 s
    utts = read_manifest(tmp_path)
    full = SpeechImageDataset(utts)
    item = full[0]
    assert item["wav"].dtype == torch.float32 and item["wav"].shape == (8000,) and item["n_words"] == 3
    cropped = SpeechImageDataset(utts, max_audio_s=0.2, random_crop=False)[0]
    assert cropped["wav"].shape == (3200,)
    assert [w["word"] for w in cropped["words"]] == ["a"] and cropped["n_words"] == 1
    rand = SpeechImageDataset(utts, max_audio_s=0.2, seed=1)
    assert torch.equal(rand[1]["wav"], rand[1]["wav"])  # same (seed, epoch, index): same crop
    batch = collate_speech_image([cropped, full[1]])
    assert batch["wav"].shape == (2, 8000)
    assert batch["wav_lens"].tolist() == [3200, 8000] and batch["image_ids"].tolist() == [0, 1]
    assert batch["target_counts"].tolist() == [1, 3]
    assert torch.all(batch["wav"][0, 3200:] == 0)
    ds = SpeechImageDataset(utts, image_transform=lambda im: torch.zeros(3, im.size[1], im.size[0]))
    assert collate_speech_image([ds[0], ds[1]])["images"].shape == (2, 3, 16, 16)
    assert ds.image_keys() == sorted(str(u.image_path) for u in utts)


def test_a_training_crop_keeps_the_text_of_the_words_it_keeps(tmp_path: Path) -> None:
    from trainer.loop.utterance_data import UtteranceDataset

    make_manifest(tmp_path, n_images=2, captions_per_image=2)  # 0.5 s wavs, "a red circle" up to 0.45 s
    utts = read_manifest(tmp_path)
    assert UtteranceDataset(utts, max_audio_s=10.0, train=True)[0]["text"] == "a red circle"
    torch.manual_seed(0)
    cropped = UtteranceDataset(utts, max_audio_s=0.2, train=True)
    for i in range(len(utts)):
        item = cropped[i]
        assert item["wav"].shape == (3200,)
        assert item["text"] == " ".join(w["word"] for w in item["words"])  # what the CIF count is taken from
        assert len(item["words"]) < 3


def test_a_whole_word_crop_moves_its_edges_into_the_pauses(tmp_path: Path) -> None:
    from trainer.loop.utterance_data import UtteranceDataset, whole_word_window

    # words a 0.05-0.1, red 0.15-0.25, circle 0.3-0.45 (s); at 16 kHz
    words = [{"word": "a", "start_s": 0.05, "end_s": 0.1}, {"word": "red", "start_s": 0.15, "end_s": 0.25},
             {"word": "circle", "start_s": 0.3, "end_s": 0.45}]
    assert whole_word_window(words, 3200, 6400) == (2400, 4800)  # start in "red" -> its onset; end in "circle"
    assert whole_word_window(words, 1700, 4900) == (1700, 4800)  # start in a pause stays; end cut before circle
    assert whole_word_window(words, 4000, 7200) == (4000, 7200)  # both edges already in pauses
    assert whole_word_window(words, 1000, 4200) == (800, 4000)  # start in "a"; the end then lands in "red"
    make_manifest(tmp_path, n_images=2, captions_per_image=2)
    utts = read_manifest(tmp_path)
    torch.manual_seed(0)
    cropped = UtteranceDataset(utts, max_audio_s=0.2, train=True, whole_words=True)
    for i in range(len(utts)):
        item = cropped[i]
        n = item["wav"].shape[0]
        assert n <= 3200 and item["text"] == " ".join(w["word"] for w in item["words"])
        assert all(0 <= w["start_s"] and w["end_s"] <= n / 16000 + 1e-4 for w in item["words"])


def test_an_empty_clip_is_an_error_naming_it_not_a_nan_sample(tmp_path: Path) -> None:
    import soundfile as sf

    from trainer.loop.utterance_data import UtteranceDataset

    make_manifest(tmp_path, n_images=2, captions_per_image=1)
    utts = read_manifest(tmp_path)  # checked while whole; emptied afterwards (the check runs once, up front)
    sf.write(utts[0].audio_path, np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    for ds in (SpeechImageDataset(utts), UtteranceDataset(utts)):
        with pytest.raises(AudioDecodeError, match=re.escape(f"{utts[0].audio_path} is empty")):
            ds[0]


def test_float_audio_with_nan_or_infinite_samples_is_listed_before_training(tmp_path: Path) -> None:
    """A float WAV with NaN samples passed the header check and crashed training deep in CIF (an index out of
    bounds from a NaN alpha), or would have stopped it as 'diverged' with advice to lower the learning rate."""
    import soundfile as sf

    made = make_manifest(tmp_path, n_images=3)
    for k, bad in ((0, np.nan), (1, np.inf)):
        x = (0.1 * np.random.default_rng(k).standard_normal(16000)).astype("float32")
        x[8000:8010] = bad
        sf.write(made["wavs"][k], x, 16000, subtype="FLOAT")
    good = (0.1 * np.random.default_rng(2).standard_normal(16000)).astype("float32")
    sf.write(made["wavs"][2], good, 16000, subtype="DOUBLE")  # a clean float file passes
    with pytest.raises(DatasetError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert msg.startswith("2 files"), msg
    for k in (0, 1):
        assert f"audio {made['wavs'][k]} (has NaN or infinite samples" in msg
    assert str(made["wavs"][2]) not in msg


def test_the_check_names_the_longest_files_that_evaluation_runs_whole(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Validation and `trainer eval` never crop an utterance: a long one in val/test could exhaust a real-size
    model's memory hours into a run. The up-front check (which reads every length anyway) says so first."""
    from fixtures.data_layouts import write_wav

    from trainer.data.records import long_audio_message

    made = make_manifest(tmp_path, n_images=3, captions_per_image=2)
    with caplog.at_level("WARNING", logger="trainer.data.records"):
        read_manifest(tmp_path)
    assert "longer than" not in caplog.text
    long = made["wavs"][2]  # a val utterance
    write_wav(long, seconds=61.0)
    with caplog.at_level("WARNING", logger="trainer.data.records"):
        read_manifest(tmp_path)
    assert f"1 audio file(s) are longer than 60 s: {long} (val, 61 s)." in caplog.text
    assert "3050 frames of 20 ms, 0.03 GiB of attention scores per head and layer" in caplog.text
    paths = {Path(f"/d/{k}.wav"): float(s) for k, s in enumerate([30, 300, 90, 120, 70, 80, 65])}
    msg = long_audio_message(paths, {p: {"test"} for p in paths})
    assert msg is not None and msg.startswith("6 audio file(s) are longer than 60 s: /d/1.wav (test, 300 s), "
                                              "/d/3.wav (test, 120 s), /d/2.wav")
    assert "and 1 more" in msg and "15000 frames" in msg and "0.84 GiB" in msg
