"""The run's log.jsonl stays one readable record per line when a run was killed while writing one; a validation's
console line."""

from __future__ import annotations

import json
import logging

from trainer.loop.logs import RunLogger, validation_line


def test_a_half_written_record_is_cut_off_before_the_resumed_run_logs(tmp_path, caplog):
    whole = json.dumps({"kind": "train", "step": 2, "time": 1.0, "loss": 0.5})
    (tmp_path / "log.jsonl").write_text(whole + '\n{"kind": "train", "step": 3, "ti')  # killed mid-write
    with caplog.at_level(logging.WARNING, logger="trainer.loop.logs"):
        logs = RunLogger(tmp_path, tensorboard=False)
    logs.resumed(2, "checkpoints/last.pt")
    logs.log("train", 3, {"loss": 0.4})
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in records] == [("train", 2), ("resume", 2), ("train", 3)]
    assert "half a record" in caplog.text and "dropped 32 bytes" in caplog.text


def test_a_whole_log_and_a_new_run_are_left_as_they_are(tmp_path):
    RunLogger(tmp_path / "new", tensorboard=False).log("train", 1, {"loss": 1.0})
    text = (tmp_path / "new" / "log.jsonl").read_text()
    RunLogger(tmp_path / "new", tensorboard=False)
    assert (tmp_path / "new" / "log.jsonl").read_text() == text and text.endswith("\n")


def test_a_log_that_is_only_half_a_record_is_emptied(tmp_path):
    (tmp_path / "log.jsonl").write_bytes(b'{"kind": "tr')
    RunLogger(tmp_path, tensorboard=False).log("train", 1, {"loss": 1.0})
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [1]


def test_the_validation_line_shows_the_figures_and_the_best_metric_as_chosen():
    vals = {"n_utterances": 40, "speech_to_image": {"r1": 0.5, "r5": 0.75, "r10": 1.0},
            "image_to_speech": {"r1": 0.25, "r5": 0.5, "r10": 0.875}, "keyword_hit_rate": 0.9,
            "content_word_recall": 0.8125, "boundary_f1": None, "boundary_f1_uniform": None,
            "speech_to_image_by_parallel_weight": {"0.4": {"r1": 0.5}}, "val_loss": 2.5, "score": -2.5}
    line = validation_line(vals, "val_loss", improved=False)
    assert line == ("40 utterances: speech->image R@1/5/10 0.500/0.750/1.000, image->speech 0.250/0.500/0.875, "
                    "keyword hits 0.900, content words 0.812, boundary F1 n/a (uniform n/a); val_loss 2.500")
    assert validation_line({**vals, "score": 0.9}, "keyword_hit_rate", improved=True).endswith(
        "; keyword_hit_rate 0.900 (best so far)")
