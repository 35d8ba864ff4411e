"""`python -m trainer export`: the model folder the app and `python -m core` load, plus its model card.

    python -m trainer export --run runs/default --out resources/models/default --fp16 \\
        --eval-data /work/data/synth-default

From a run folder it takes `checkpoints/best.pt` (else `last.pt`); `--checkpoint F` names one file. Several
`--run` (or `--checkpoint`) export the average of their weights: runs fine-tuned from the same model with other
seeds or schedules (a model soup, trainer/soup.py). The
folder is written by `core.factory.save_model` (config.json + model.safetensors); the card
(model_card.json + model_card.md) records the data, seed, voices, training time and machine, the auxiliary
signals used, and, with `--eval-data`, the `trainer eval` metrics of the test split and of the held-out voice.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
from pathlib import Path
from typing import Any

import torch

from core.errors import CheckpointError, ConfigError, DatasetError
from trainer.checkpoint import BEST, LAST, checkpoint_dir
from trainer.model_folder_out import check_out_folder, fresh_partial, swap_in

logger = logging.getLogger(__name__)

HELP = __doc__
INTERRUPTED = ("interrupted; --out holds its previous contents or the complete new model folder (whose card may "
               "lack the metrics): run the export again")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, action="append",
                     help="a training run folder (its checkpoints/best.pt, else last.pt; see --which); repeat it to export the "
                     "average of several runs' weights (runs fine-tuned from the same --init-from model)")
    src.add_argument("--checkpoint", type=Path, action="append",
                     help="a training checkpoint file (.pt); repeat it to average several")
    src.add_argument("--model", type=Path, help="an exported model folder: change only its inference settings "
                     "(--retrieval*, --query-speeds), re-evaluate with --eval-data and rewrite its card")
    # absolute: `--out .` has no name to put `.partial` beside
    parser.add_argument("--out", type=lambda s: Path(s).absolute(), required=True, help="model folder to write")
    parser.add_argument("--which", choices=["best", "last"], default="best",
                        help="with --run: which checkpoint (default best: best.pt, else last.pt)")
    parser.add_argument("--fp16", action="store_true", help="store the weights as float16 (half the size)")
    parser.add_argument("--eval-data", default="", help="dataset folder: evaluate and put the metrics in the card")
    parser.add_argument("--eval-dataset", choices=["manifest", "flickr8k", "spokencoco"], default=None,
                        help="layout of --eval-data (default: the run's dataset when it is flickr8k or spokencoco, "
                        "else manifest; with --model, manifest)")
    parser.add_argument("--eval-splits", default="test,test_unseen_voice",
                        help="splits to evaluate with --eval-data, comma-separated (default test,test_unseen_voice; "
                        "missing ones are skipped)")
    parser.add_argument("--card-extra", default="",
                        help="JSON object merged into the model card: inline, or @FILE (a JSON file)")
    parser.add_argument("--retrieval", choices=["parallel", "cascaded", "mean"], default=None,
                        help="which branch's vector is the search query (default: as trained)")
    parser.add_argument("--retrieval-parallel-weight", type=float, default=None,
                        help="with --retrieval mean: query = normalise(W * parallel + cascaded) (default: as trained)")
    parser.add_argument("--name", default=None,
                        help="the model's name in config.json and its card (default: the run's model config name, "
                        "which a fine-tune shares with its --init-from model; with --model, the folder's own)")
    parser.add_argument("--query-speeds", default=None,
                        help="test-time speed ensemble, e.g. 0.85,0.92,1,1.08,1.16 (1 = off; default: as trained)")


def pick_checkpoint(run: Path, which: str = "best") -> Path:
    d = checkpoint_dir(run)
    order = [BEST, LAST] if which == "best" else [LAST]
    for name in order:
        if (d / name).is_file():
            return d / name
    if (run / "config.json").is_file() and not checkpoint_dir(run).is_dir():
        from core.factory import is_training_run_folder

        if not is_training_run_folder(run):  # an exported model folder
            raise CheckpointError(f"--run {run} is a model folder, not a training run folder: its settings change "
                                  f"with --model {run}; a run folder holds checkpoints/")
    raise CheckpointError(f"no checkpoint in {d} ({' or '.join(order)}); train first or pass --checkpoint")


def model_from_checkpoint(ckpt: dict[str, Any]) -> Any:
    """Rebuild the SpeechClipModel of a training checkpoint (through core.factory) and load its weights."""
    from core.factory import create_model
    from core.model.config import model_config_from_dict
    from trainer.checkpoint import strip_prefixes

    model = create_model(model_config_from_dict(ckpt["model_cfg"]))
    model.load_state_dict(strip_prefixes(ckpt["model"]))
    model.eval()
    return model


def _data_info(data_dir: str) -> dict[str, Any]:
    out: dict[str, Any] = {"data_dir": data_dir}
    for name in ("info.json", "voices.json"):
        p = Path(data_dir) / name
        if data_dir and p.is_file():
            try:
                blob = json.loads(p.read_text())
            except json.JSONDecodeError:
                continue
            if name == "voices.json":
                blob = {k: v for k, v in blob.items() if k != "details"}
            out[name.removesuffix(".json")] = blob
    return out


def build_card(ckpt: dict[str, Any], source: Path, metrics: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model card as a dict (model_card.json)."""
    cfg = ckpt.get("config", {})
    mcfg = ckpt["model_cfg"]
    data = _data_info(cfg.get("data_dir", ""))
    voices = data.get("voices", {})
    train_voices = cfg.get("train_voices") or voices.get("train_voices") or []
    held_out = sorted(set(cfg.get("exclude_voices") or []) | set(voices.get("holdout_voices") or []))
    clip_metrics: dict[str, Any] = {}
    clip_file = Path(cfg.get("run_dir", "")) / "clip_stage" / "clip.pt"
    if cfg.get("clip_train_steps") and clip_file.is_file():
        clip_metrics = dict(torch.load(clip_file, map_location="cpu", weights_only=True).get("metrics", {}))
    boundary_weight = mcfg.get("aux_boundary_loss_weight", 0.0)
    word_times = ckpt.get("word_times")  # absent in checkpoints of older versions: the configured weight stands
    boundary_note = ""
    if boundary_weight and word_times and not word_times.get("with_word_times"):
        boundary_note = (f"configured {boundary_weight:g}, but none of the {word_times.get('utterances')} training "
                         "utterances had word times, so it was off")
        boundary_weight = 0.0
    card = {
        "name": mcfg.get("name"),
        "architecture": mcfg["branch"]["model_type"],
        "retrieval": mcfg.get("retrieval"),
        "retrieval_parallel_weight": mcfg.get("retrieval_parallel_weight", 1.0),
        "query_speed_ensemble": list(mcfg.get("query_speed_ensemble", [1.0])),
        "checkpoint": str(source),
        "step": ckpt.get("step"),
        "epoch": ckpt.get("epoch"),
        "best_val_metric": {"name": cfg.get("best_metric"), "value": ckpt.get("best_metric")},
        "data": {"dataset": cfg.get("dataset"), **data},
        "seed": cfg.get("seed"),
        "train_voices": [v for v in train_voices if v not in held_out],
        "held_out_voices": held_out,
        "auxiliary_signals": {
            "cif_target": mcfg["cif"]["target"],
            "cif_target_note": ("known word count of the caption (its CLIP token count)"
                                if mcfg["cif"]["target"] == "text_tokens" else "round(frames / frames_per_unit)"),
            "aux_keyword_loss_weight": mcfg.get("aux_keyword_loss_weight", 0.0),
            "aux_boundary_loss_weight": boundary_weight,
            **({"aux_boundary_loss_note": boundary_note} if boundary_note else {}),
            "bank_negatives": cfg.get("bank_negatives", 0),  # speech->image negatives beyond the batch
            "switch_off": ("model_overrides {\"cif\": {\"target\": \"frames\"}, \"aux_keyword_loss_weight\": 0, "
                           "\"aux_boundary_loss_weight\": 0}; bank_negatives=0"),
        },
        "augmentation": {k: cfg[k] for k in ("augment_speed", "augment_eq_p", "augment_tilt_p", "augment_reverb_p",
                                             "augment_reverb_rt60", "augment_noise_p", "augment_snr_db",
                                             "augment_gain_db") if k in cfg},
        "clip_stage": ({"steps": cfg.get("clip_train_steps", 0), "extra_scenes": cfg.get("clip_extra_scenes", 0),
                        **clip_metrics} if cfg.get("clip_train_steps") else _inherited_clip_stage(cfg)),
        "training": {
            "config": cfg,
            "clip_stage_steps": cfg.get("clip_train_steps", 0),
            "clip_stage_metrics": clip_metrics,
            "torch": torch.__version__,
            "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} torch threads",
        },
        "metrics": metrics or {},
    }
    if ckpt.get("weight_average"):
        card["weight_average"] = ckpt["weight_average"]
    if ckpt.get("ema"):
        card["weight_ema"] = {"decay": ckpt["ema"]["decay"], "updates": ckpt["ema"]["updates"]}
    if extra:
        card.update(extra)
    return card


def _inherited_clip_stage(cfg: dict[str, Any]) -> dict[str, Any]:
    """The CLIP stage of a run that trained none: that of its --init-from model (a later stage's CLIP is the
    earlier stage's, frozen), from that model's card, naming where it came from; else no steps."""
    none: dict[str, Any] = {"steps": 0, "extra_scenes": cfg.get("clip_extra_scenes", 0)}
    init = cfg.get("init_from") or ""
    if not init or cfg.get("clip_refit"):
        return none
    try:
        source = json.loads((Path(init) / "model_card.json").read_text()).get("clip_stage") or {}
    except (OSError, ValueError, AttributeError) as exc:  # moved, deleted or not a card: say nothing of it
        logger.info("the run's --init-from model %s has no readable model card (%s): its CLIP stage is not named "
                    "in this card", init, exc)
        return none
    if not isinstance(source, dict) or not source.get("steps"):
        return none
    return {**source, "from": source.get("from") or init}


def card_markdown(card: dict[str, Any]) -> str:
    """A human-readable rendering of the card (model_card.md)."""
    lines = [f"# Model card: {card.get('name')}", "",
             f"- Architecture: SpeechCLIP+ `{card['architecture']}`; checkpoint at step {card.get('step')} "
             f"(epoch {card.get('epoch')}) of its run" + (" (the last of several stages, see Stages)"
                                                          if card.get("stages") else ""),
             f"- Data: {card['data'].get('dataset')} at `{card['data'].get('data_dir')}` (data seed "
             f"{card['data'].get('info', {}).get('seed', 'n/a')}); training seed {card.get('seed')}",
             f"- Train voices: {', '.join(card['train_voices']) or 'all'}",
             f"- Held-out voices (never heard in training): {', '.join(card['held_out_voices']) or 'none'}",
             f"- Auxiliary signals: CIF target `{card['auxiliary_signals']['cif_target']}` "
             f"({card['auxiliary_signals']['cif_target_note']}); auxiliary keyword CE weight "
             f"{card['auxiliary_signals']['aux_keyword_loss_weight']}; auxiliary boundary loss (known word times) "
             f"weight {card['auxiliary_signals'].get('aux_boundary_loss_weight', 0.0)}"
             + (f" ({card['auxiliary_signals']['aux_boundary_loss_note']})"
                if card['auxiliary_signals'].get('aux_boundary_loss_note') else "") + "; "
             f"{_bank_note(card['auxiliary_signals'].get('bank_negatives', 0))} (switch off: "
             f"`{card['auxiliary_signals']['switch_off']}`)"]
    speeds = card.get("query_speed_ensemble") or [1.0]
    lines.append(f"- Query: `{card.get('retrieval')}` vector" + (
        f" (normalise({card.get('retrieval_parallel_weight')} x parallel + cascaded))"
        if card.get("retrieval") == "mean" else "") + (
        f"; test-time speed ensemble x{speeds} (not in the paper: each branch's vector averaged over the query "
        f"resampled by each factor; switch off: `trainer export --model DIR --out DIR --query-speeds 1`)"
        if len(speeds) > 1 else "; no test-time ensemble"))
    soup = card.get("weight_average") or []
    if soup:
        lines.append(f"- Weights: the average of {len(soup)} runs fine-tuned from the same model (a model soup; not "
                     "in the paper): " + "; ".join(f"`{s['checkpoint']}` (step {s['step']}, seed {s['seed']})"
                                                   for s in soup))
    ema = card.get("weight_ema")
    if ema:
        lines.append(f"- Weights: an exponential moving average of the trained weights (decay {ema['decay']}, "
                     f"{ema['updates']} updates; not in the paper)")
    aug = card.get("augmentation") or {}
    if aug:
        lines.append(f"- Training augmentation (on the fly): speed x{aug.get('augment_speed')}, random EQ "
                     f"p={aug.get('augment_eq_p', 0.0)}, spectral tilt p={aug.get('augment_tilt_p')}, room reverb "
                     f"p={aug.get('augment_reverb_p', 0.0)} (RT60 {aug.get('augment_reverb_rt60')} s), noise "
                     f"p={aug.get('augment_noise_p')} at "
                     f"{aug.get('augment_snr_db')} dB SNR, gain {aug.get('augment_gain_db')} dB")
    cs = card.get("clip_stage") or {}
    if cs.get("steps"):
        r1 = cs.get("val_text_to_image_r1")
        lines.append(f"- CLIP stage: {cs['steps']} steps on the training captions + {cs.get('extra_scenes', 0)} extra "
                     f"synthetic scenes (no speech)" + (f"; val caption->image R@1 {r1:.3f}" if r1 is not None else "")
                     + (f" (the CLIP of `{cs['from']}`, kept frozen since)"
                        if cs.get("from") else ""))
    for key in ("stages", "reproduce", "training_time", "machine_note", "limitations"):
        if key in card:
            lines.append(f"- {key.replace('_', ' ').capitalize()}: {card[key]}")
    for split, m in card.get("metrics", {}).items():
        if not isinstance(m, dict) or "speech_to_image" not in m:
            continue
        s2i, i2s = m["speech_to_image"], m["image_to_speech"]
        lines += ["", f"## `trainer eval` on split `{split}` ({m.get('n_utterances')} utterances, "
                      f"{m.get('n_images')} images)", "",
                  "| metric | value |", "|---|---|",
                  f"| speech→image R@1 / R@5 / R@10 | {s2i['r1']:.3f} / {s2i['r5']:.3f} / {s2i['r10']:.3f} |",
                  f"| image→speech R@1 / R@5 / R@10 | {i2s['r1']:.3f} / {i2s['r5']:.3f} / {i2s['r10']:.3f} |",
                  f"| keyword hit rate | {m['keyword_hit_rate']:.3f} |",
                  f"| content-word recall | {m['content_word_recall']:.3f} |",
                  f"| boundary F1 (50 ms) | {_fmt(m.get('boundary_f1'))} |",
                  f"| boundary F1, uniform baseline | {_fmt(m.get('boundary_f1_uniform'))} |"]
    return "\n".join(lines) + "\n"


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.3f}"


def parse_speeds(value: str) -> tuple[float, ...]:
    """`--query-speeds 0.85,1,1.16` -> (0.85, 1.0, 1.16); "1" switches the ensemble off."""
    from core.model.config import speed_ensemble_problem

    try:
        speeds = tuple(float(x) for x in value.split(",") if x.strip())
    except ValueError as exc:
        raise ConfigError(f"--query-speeds {value!r}: expected comma-separated numbers such as 0.85,1,1.16") from exc
    problem = speed_ensemble_problem(speeds)
    if problem:
        raise ConfigError(f"--query-speeds {value!r} {problem}")
    return speeds


def _settings(retrieval: str | None, parallel_weight: float | None, speeds: tuple[float, ...] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if retrieval:
        out["retrieval"] = retrieval
    if parallel_weight is not None:
        out["retrieval_parallel_weight"] = parallel_weight
    if speeds is not None:
        out["query_speed_ensemble"] = list(speeds)
    return out


def _evaluate_folder(out: Path, eval_data: str, eval_splits: tuple[str, ...], dataset: str = "manifest"
                     ) -> dict[str, Any]:
    """`trainer eval` of the folder just written, per split: the card's numbers are what eval gives. A split
    the data lacks is skipped with an INFO line, one that fails with a warning; when none could be evaluated,
    DatasetError (the folder stays)."""
    from core.factory import load_model
    from trainer.eval_cli import evaluate_split

    metrics: dict[str, Any] = {}
    if not eval_data or not eval_splits:
        return metrics
    exported = load_model(out, device="cpu")
    problems = []
    present = _splits_of(eval_data, dataset)
    for split in eval_splits:
        if present is not None and split not in present:  # e.g. a user's own data has no unseen-voice split
            logger.info("split %s is not in %s (its splits: %s): not evaluated (--eval-splits chooses the splits)",
                        split, eval_data, ", ".join(sorted(present)) or "none")
            problems.append(f"{split}: not in the data")
            continue
        try:
            metrics[split] = evaluate_split(exported, eval_data, split, dataset=dataset)
        except Exception as exc:  # a missing split must not lose the export
            logger.warning("evaluation of split %s skipped: %s", split, exc)
            problems.append(f"{split}: {exc}")
    if not metrics:
        raise DatasetError(f"the model folder {out} was written, but no split of {eval_data} (read as {dataset}) "
                           "could be evaluated for its card: " + "; ".join(problems)
                           + ". Fix: --eval-dataset / --eval-splits, then `trainer export --model "
                           f"{out} --out {out} --eval-data ...` to re-evaluate")
    return metrics


def _splits_of(data: str, dataset: str) -> set[str] | None:
    """The splits a dataset has (None when that cannot be told here: the evaluation then says what is wrong)."""
    try:
        if dataset == "manifest":
            from trainer.data.manifest import read_manifest

            return {u.split for u in read_manifest(data, check=False)}
        if dataset == "flickr8k":
            from trainer.data.flickr8k import SPLIT_FILES

            return set(SPLIT_FILES)
        if dataset == "spokencoco":
            from trainer.data.spokencoco import SPLITS

            return set(SPLITS)
    except DatasetError:
        return None
    return None


def eval_dataset_of(ckpt: dict[str, Any], asked: str | None) -> str:
    """--eval-dataset, else the run's own dataset when it has a reader other than the manifest's."""
    if asked:
        return asked
    trained_on = (ckpt.get("config") or {}).get("dataset", "manifest")
    return trained_on if trained_on in ("flickr8k", "spokencoco") else "manifest"


def export_checkpoint(ckpt_path: Path | list[Path], out: Path, *, fp16: bool = False, eval_data: str = "",
                      eval_splits: tuple[str, ...] = ("test",), eval_dataset: str | None = None,
                      extra: dict[str, Any] | None = None,
                      retrieval: str | None = None, parallel_weight: float | None = None,
                      speeds: tuple[float, ...] | None = None, name: str | None = None) -> dict[str, Any]:
    """Write the model folder + card; returns the card. Several checkpoints: their weights' average."""
    from core.factory import save_model
    from trainer.soup import average_checkpoints

    check_out_folder(out)  # before anything is read or written
    paths = list(ckpt_path) if isinstance(ckpt_path, list) else [ckpt_path]
    ckpt = average_checkpoints(paths)
    paths = [Path(p["checkpoint"]) for p in ckpt["weight_average"]] if ckpt.get("weight_average") else paths[:1]
    given = _settings(retrieval, parallel_weight, speeds)
    ckpt["model_cfg"].update(given)
    if name:
        ckpt["model_cfg"]["name"] = name
    _report_query(ckpt, given, bool(name))
    model = model_from_checkpoint(ckpt)
    if fp16:
        model = model.half()
    card = build_card(ckpt, paths[0], {}, extra)
    partial = fresh_partial(out)  # `out` is replaced only by a complete folder (an interrupted export leaves none)
    try:
        save_model(model, partial)
        write_card(partial, card)  # a card even if the evaluation below fails
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    swap_in(partial, out)
    if eval_data:
        card["metrics"] = _evaluate_folder(out, eval_data, eval_splits, eval_dataset_of(ckpt, eval_dataset))
        write_card(out, card)
    logger.info("exported %s -> %s", ", ".join(map(str, paths)), out)
    return card


QUERY_FLAGS = {"retrieval": "--retrieval", "retrieval_parallel_weight": "--retrieval-parallel-weight",
               "query_speed_ensemble": "--query-speeds"}


def _report_query(ckpt: dict[str, Any], given: dict[str, Any], named: bool) -> None:
    """Log the query settings and the name the export writes, and where they come from; warn when the run's
    --init-from model (a fine-tune's source) queries otherwise (runs of older versions did not keep its settings)."""
    def norm(v: Any) -> Any:
        return [float(x) for x in v] if isinstance(v, list | tuple) else v

    mcfg = ckpt["model_cfg"]
    now = {k: norm(mcfg.get(k)) for k in QUERY_FLAGS}
    init = (ckpt.get("config") or {}).get("init_from") or ""
    source = None
    if init:
        from core.factory import read_model_folder_config

        try:
            source = {k: norm(v) for k, v in read_model_folder_config(init)[0].to_dict().items()}
        except Exception as exc:  # moved or deleted since: nothing to compare with
            logger.info("the run's --init-from model %s cannot be read (%s): its query settings are not compared",
                        init, exc)
    differ = [k for k in QUERY_FLAGS if source is not None and k not in given and source.get(k) != now[k]]
    logger.info("query settings written: %s (%s)", ", ".join(f"{k} {v}" for k, v in now.items()),
                ("as given" if len(given) == len(QUERY_FLAGS) else "as given where set, else as trained" if given
                 else "as trained") + (f"; the run was fine-tuned from {init}" if init else ""))
    if differ:
        logger.warning("the run's --init-from model %s queries with %s; this export writes the run's own %s. "
                       "To query as it does: %s", init, ", ".join(f"{k} {source[k]}" for k in differ),  # type: ignore[index]
                       ", ".join(f"{k} {now[k]}" for k in differ),
                       " ".join(f"{QUERY_FLAGS[k]} {_flag_value(source[k])}" for k in differ))  # type: ignore[index]
    if source is not None and not named and source.get("name") == mcfg.get("name"):
        logger.info("model name %s is that of its --init-from model %s; --name sets another", mcfg.get("name"), init)


def _flag_value(value: Any) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, list | tuple) else str(value)


def _rename_folder(folder: Path, name: str) -> None:
    """Set the model name in a model folder's config.json (atomically; the weights are untouched)."""
    import os

    from core.factory import CONFIG_FILE

    meta = json.loads((folder / CONFIG_FILE).read_text())
    meta["name"] = meta["model_cfg"]["name"] = name
    tmp = folder / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, folder / CONFIG_FILE)


def retune_model_folder(src: Path, out: Path, *, eval_data: str = "", eval_splits: tuple[str, ...] = ("test",),
                        eval_dataset: str | None = None, extra: dict[str, Any] | None = None, retrieval: str | None = None,
                        parallel_weight: float | None = None, speeds: tuple[float, ...] | None = None,
                        name: str | None = None) -> dict[str, Any]:
    """An exported model folder with new inference settings (weights unchanged, copied when `out` differs);
    with `eval_data` its card's metrics are re-measured, the rest of its card is kept. `src` is checked before
    anything is written, and `out` is replaced only by a complete copy with the new settings."""
    from core.factory import update_inference_settings

    check_model_folder(src)  # before anything is copied
    copy = out.resolve() != src.resolve()
    target = _copy_beside(src, out) if copy else out
    try:
        cfg = update_inference_settings(target, **_settings(retrieval, parallel_weight, speeds))
        if name:
            _rename_folder(target, name)
    except BaseException:
        if copy:
            shutil.rmtree(target, ignore_errors=True)
        raise
    if copy:
        swap_in(target, out)
    card_file = out / "model_card.json"
    card: dict[str, Any] = json.loads(card_file.read_text()) if card_file.is_file() else {
        "name": cfg.name, "architecture": cfg.branch.model_type, "train_voices": [], "held_out_voices": [],
        "data": {}, "auxiliary_signals": {"cif_target": cfg.cif.target, "cif_target_note": "",
                                          "aux_keyword_loss_weight": cfg.aux_keyword_loss_weight,
                                          "switch_off": ""}}
    card.update(retrieval=cfg.retrieval, retrieval_parallel_weight=cfg.retrieval_parallel_weight,
                query_speed_ensemble=list(cfg.query_speed_ensemble))
    if name:
        card["name"] = name
    if eval_data:
        card["metrics"] = _evaluate_folder(out, eval_data, eval_splits, eval_dataset or "manifest")
    if extra:
        card.update(extra)
    write_card(out, card)
    logger.info("retuned %s -> %s", src, out)
    return card


def check_model_folder(src: Path) -> None:
    """Refuse a `--model` that is not an exported model folder (a run folder is named as one), reading only its
    config.json's shape: a folder whose settings are invalid is still accepted, as new settings may mend it."""
    from core.errors import ModelNotFoundError
    from core.factory import CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE, is_training_run_folder

    if is_training_run_folder(src):
        raise ModelNotFoundError(f"--model {src}: {src} is a training run folder, not a model folder: use --run "
                                 f"{src} to export it (nothing was written)")
    path = src / CONFIG_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing: {src} is not a model folder (export writes one)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read as JSON ({exc}): {src} is not a model folder") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("model_cfg"), dict):
        raise CheckpointError(f"{path} is not a model folder's config (no model_cfg): {src} is not a model folder "
                              "(export writes one)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {meta.get('format_version')!r}; this program reads "
                              f"{FORMAT_VERSION}")
    if not (src / WEIGHTS_FILE).is_file():
        raise ModelNotFoundError(f"{src / WEIGHTS_FILE} is missing: the model folder {src} is incomplete")


def _copy_beside(src: Path, out: Path) -> Path:
    """A full copy of the model folder `src` in `out`.partial (so `out` is replaced only by a complete folder);
    an `out` that check_out_folder refuses is refused before anything is copied."""
    check_out_folder(out)
    partial = fresh_partial(out)
    shutil.copytree(src, partial)
    return partial


def write_card(out: Path, card: dict[str, Any]) -> None:
    (out / "model_card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    (out / "model_card.md").write_text(card_markdown(card))


def parse_card_extra(value: str) -> dict[str, Any] | None:
    """`--card-extra`: an inline JSON object or `@FILE`; anything else is a ConfigError naming the problem."""
    if not value:
        return None
    where = "--card-extra"
    if value.startswith("@"):
        path = Path(value[1:])
        where = f"--card-extra file {path}"
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from exc
    try:
        extra = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(extra, dict):
        raise ConfigError(f"{where} must be a JSON object, not {type(extra).__name__}")
    return {k: v for k, v in extra.items() if not k.startswith("_")}  # "_comment" keys, as in our configs


def run(args: argparse.Namespace) -> int:
    extra = parse_card_extra(args.card_extra)  # before the checkpoint is read: a typo fails at once
    if args.eval_data and not Path(args.eval_data).is_dir():
        raise DatasetError(f"--eval-data {args.eval_data} is not a folder (a dataset root); nothing was written")
    speeds = parse_speeds(args.query_speeds) if args.query_speeds is not None else None
    splits = tuple(s for s in args.eval_splits.split(",") if s)
    settings = dict(eval_data=args.eval_data, eval_splits=splits, eval_dataset=args.eval_dataset, extra=extra,
                    retrieval=args.retrieval,
                    parallel_weight=args.retrieval_parallel_weight, speeds=speeds, name=args.name)
    if args.model:
        if args.fp16:
            raise ConfigError("--fp16 applies to --run / --checkpoint; --model keeps the folder's weights as they are")
        retune_model_folder(args.model, args.out, **settings)  # type: ignore[arg-type]
    else:
        ckpts = args.checkpoint or [pick_checkpoint(run, args.which) for run in args.run]
        export_checkpoint(ckpts, args.out, fp16=args.fp16, **settings)  # type: ignore[arg-type]
    print(f"wrote {args.out}")
    return 0


def _bank_note(count: int) -> str:
    """The model card's words for TrainConfig.bank_negatives."""
    if not count:
        return "in-batch contrastive negatives only (as the paper)"
    which = "every training image" if count < 0 else f"{count} training images per batch"
    return f"speech->image negatives from {which} beyond the batch (cached features; not in the paper)"
