"""Whisper -> words: the speech-recognition baseline beside SpeechCLIP+ (a transcript searched as typed text).

The pipeline a reviewer compares a visually grounded speech model with (../shared/reference/peers.md §5:
Whisper -> CLIP text): the recording is transcribed by a local Whisper model (transformers, never downloaded:
a model folder, or a Hugging Face name already in the cache) and the transcript is searched as a typed query.
Nothing ships with the app: a Whisper model is the user's (`huggingface-cli download openai/whisper-small
--local-dir DIR` on a connected machine). English and ~100 other languages, as the Whisper model knows them; with
`translate` a multilingual Whisper writes what was said in English (its own translate task), so a query spoken in
another language searches the English CLIP (peers' ask #4: non-English queries).
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CheckpointError, ConfigError, ModelNotFoundError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Whisper's, as the query audio's (core.audio)
MAX_NEW_TOKENS = 128  # a spoken query is a sentence; Whisper's own limit is 448


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None  # the language Whisper was told or found ("en"), None when the model does not say
    elapsed_ms: float
    translated: bool = False  # `text` is Whisper's English translation of what was said in `language`


class WhisperTranscriber:
    """A local Whisper model (folder or cached Hugging Face name), loaded once, on `device` ("cpu", "cuda").
    `translate`: write what was said in English (a multilingual Whisper; an English-only one raises ConfigError)."""

    def __init__(self, name_or_path: str | Path, device: str = "cpu", language: str | None = None,
                 translate: bool = False) -> None:
        import torch
        from safetensors import SafetensorError
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.name = str(name_or_path)
        self.language, self.translate = language, translate
        self.asked = (self.name, language, translate)  # as given ("German"): what a caller compares to reuse it
        try:
            with _transformers_quiet():  # its "Loading weights" bar on stderr: a library prints no progress
                self.processor = WhisperProcessor.from_pretrained(self.name, local_files_only=True)
                self.model = WhisperForConditionalGeneration.from_pretrained(self.name, local_files_only=True)
        except (OSError, ValueError) as exc:  # the cause is logged: a folder's is transformers' repo-name rule
            logger.info("Whisper model %s not loaded: %s", self.name, exc)
            raise ModelNotFoundError(_missing(self.name)) from exc
        except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError) as exc:  # there, but unusable
            raise CheckpointError(f"Whisper model {self.name!r} cannot be loaded: its weights are corrupt or "
                                  f"truncated ({type(exc).__name__}: {str(exc)[:200]})") from exc
        if language and _multilingual(self.model.generation_config):
            self.language = _language_code(language, self.model.generation_config)
        if translate and not _can_translate(self.model.generation_config):
            raise ConfigError(f"Whisper model {Path(self.name).name or self.name!r} cannot translate: it is English-only "
                              "(a .en model); choose a multilingual one (openai/whisper-small, not whisper-small.en)")
        self.device = torch.device(device)
        self.model.to(self.device).eval()

    def transcribe(self, wav: np.ndarray) -> Transcript:
        """wav (S,) float32 at 16 kHz (core.audio.load_audio's) -> what was said."""
        import torch

        t0 = time.perf_counter()
        features = self.processor(np.asarray(wav, np.float32), sampling_rate=SAMPLE_RATE,
                                  return_tensors="pt").input_features.to(self.device)
        room = int(getattr(self.model.config, "max_target_positions", 448)) - 4  # after the start, language, task tokens
        kwargs: dict = {"max_new_tokens": max(1, min(MAX_NEW_TOKENS, room))}
        language = self.language
        with torch.inference_mode(), _transformers_quiet():
            if _multilingual(self.model.generation_config):
                # the language told, or detected here as generate() would (its output no longer shows it)
                language = language or self._detect_language(features)
                kwargs.update(language=language, task="translate" if self.translate else "transcribe")
            tokens = self.model.generate(features, **kwargs)
        text = self.processor.batch_decode(tokens, skip_special_tokens=True)[0].strip()
        elapsed = (time.perf_counter() - t0) * 1000
        logger.info("whisper %s heard %r in %.0f ms%s", self.name, text, elapsed,
                    f" (translated from {language})" if self.translate else "")
        return Transcript(text, language, elapsed, self.translate)

    def _detect_language(self, features: Any) -> str | None:
        """Whisper's language of the recording ("de"), by its own detection (one decoder step)."""
        token_id = int(self.model.detect_language(input_features=features)[0])
        piece = self.processor.tokenizer.convert_ids_to_tokens(token_id)
        return piece[2:-2] if piece.startswith("<|") and piece.endswith("|>") else None


@contextmanager
def _transformers_quiet() -> Iterator[None]:
    """transformers warns on every Whisper generate() about its own generation settings (nothing to act on) and
    draws a progress bar while it loads weights."""
    from transformers.utils import logging as hf_logging

    log = logging.getLogger("transformers")
    level, bars = log.level, hf_logging.is_progress_bar_enabled()
    log.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        log.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def _missing(name: str) -> str:
    """What to do when `name`, a folder or a Hugging Face name, holds no Whisper model here."""
    path = Path(name).expanduser()
    if path.is_absolute() or name.startswith(".") or path.exists():
        return (f"no Whisper model in {name} (no download is done): fill that folder once on a connected machine "
                f"with `huggingface-cli download openai/whisper-small --local-dir {name}` (or any Whisper size), or "
                "give a folder written by transformers' save_pretrained with its processor")
    return (f"Whisper model {name!r} is not in the Hugging Face cache of this machine (no download is done): fill "
            f"it once with `huggingface-cli download {name}` on a connected machine, or give a model folder")


def _multilingual(generation_config: object) -> bool:
    """A multilingual Whisper (openai/whisper-small, not .en): its generation config names languages and tasks."""
    return getattr(generation_config, "is_multilingual", True) is not False and \
        bool(getattr(generation_config, "lang_to_id", None)) and bool(getattr(generation_config, "task_to_id", None))


def _language_code(language: str, generation_config: object) -> str:
    """The code Whisper knows `language` by ("de" for "de", "DE", "German" or "<|de|>"); ConfigError when it knows
    no such language (transformers would raise a ValueError listing all 100)."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    name = language.strip().lower().removeprefix("<|").removesuffix("|>")
    code = TO_LANGUAGE_CODE.get(name, name)
    if f"<|{code}|>" not in generation_config.lang_to_id:  # type: ignore[attr-defined]
        raise ConfigError(f"Whisper knows no language {language!r}: give its code (en, de, fr, es, zh, ...) or its "
                          "English name, or leave the language empty for Whisper to detect it")
    return code


def _can_translate(generation_config: object) -> bool:
    """Whisper's translate task (into English) is there: a multilingual model."""
    return _multilingual(generation_config) and "translate" in generation_config.task_to_id  # type: ignore[attr-defined]
