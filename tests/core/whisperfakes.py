"""A tiny random Whisper of the real transformers classes, saved as a user's model folder would be (the core and
the app tests of the Whisper baseline): it transcribes into random characters, through the real code path."""

from __future__ import annotations

import json
from pathlib import Path


def make_tiny_whisper(d: Path, multilingual: bool = False) -> Path:
    """A Whisper folder as save_pretrained writes it in `d`: 2-layer model, a byte-level tokenizer with Whisper's
    special tokens, a 16-bin feature extractor. `multilingual`: as openai/whisper-small (not .en) is, two languages
    (en, de) and the transcribe and translate tasks in its generation config."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(bytes_to_unicode().values())}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    end = "<|endoftext|>"
    tok = WhisperTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), unk_token=end, bos_token=end, eos_token=end,
                           pad_token=end)
    tok.add_special_tokens({"additional_special_tokens": ["<|startoftranscript|>", "<|en|>", "<|de|>",
                                                          "<|translate|>", "<|transcribe|>", "<|notimestamps|>"]})
    ids = tok.convert_tokens_to_ids
    cfg = WhisperConfig(vocab_size=len(tok), num_mel_bins=16, d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_source_positions=1500, max_target_positions=64, bos_token_id=ids(end),
                        eos_token_id=ids(end), pad_token_id=ids(end),
                        decoder_start_token_id=ids("<|startoftranscript|>"))
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    if multilingual:
        gen = model.generation_config
        gen._from_model_config = False  # (else from_pretrained rebuilds it from config.json, dropping these)
        gen.is_multilingual = True
        gen.lang_to_id = {t: ids(t) for t in ("<|en|>", "<|de|>")}
        gen.task_to_id = {"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")}
        gen.no_timestamps_token_id = ids("<|notimestamps|>")
    model.save_pretrained(d)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=16), tok).save_pretrained(d)
    return d
