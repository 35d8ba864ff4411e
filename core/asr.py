"""Whisper -> words: the speech-recognition baseline beside SpeechCLIP+ (a transcript searched as typed text).

The pipeline a reviewer compares a visually grounded speech model with (../shared/reference/peers.md §5:
Whisper -> CLIP text): the recording is transcribed by a local Whisper model (transformers, never downloaded:
a model folder, or a Hugging Face name already in the cache) and the transcript is searched as a typed query.
Nothing ships with the app: a Whisper model is the user's (`huggingface-cli download openai/whisper-small
--local-dir DIR` on a connected machine). English and ~100 other languages, as the Whisper model knows them.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import CheckpointError, ModelNotFoundError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Whisper's, as the query audio's (core.audio)
MAX_NEW_TOKENS = 128  # a spoken query is a sentence; Whisper's own limit is 448


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None  # the language Whisper was told or found ("en"), None when the model does not say
    elapsed_ms: float


class WhisperTranscriber:
    """A local Whisper model (folder or cached Hugging Face name), loaded once, on `device` ("cpu", "cuda")."""

    def __init__(self, name_or_path: str | Path, device: str = "cpu", language: str | None = None) -> None:
        import torch
        from safetensors import SafetensorError
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.name = str(name_or_path)
        self.language = language
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
        if self.language and hasattr(self.model.generation_config, "lang_to_id"):
            kwargs.update(language=self.language, task="transcribe")
        with torch.inference_mode(), _transformers_quiet():
            tokens = self.model.generate(features, **kwargs)
        text = self.processor.batch_decode(tokens, skip_special_tokens=True)[0].strip()
        language = self.language or _language_token(self.processor, tokens[0])
        elapsed = (time.perf_counter() - t0) * 1000
        logger.info("whisper %s heard %r in %.0f ms", self.name, text, elapsed)
        return Transcript(text, language, elapsed)


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


def _language_token(processor: object, tokens: object) -> str | None:
    """The language Whisper detected: its <|xx|> token after <|startoftranscript|>, if the model emits one."""
    pieces = processor.tokenizer.convert_ids_to_tokens([int(t) for t in tokens[:4]])  # type: ignore[attr-defined]
    for p in pieces:
        code = p[2:-2] if p.startswith("<|") and p.endswith("|>") else ""
        if 2 <= len(code) <= 3 and code.isalpha() and code.islower():
            return code
    return None
