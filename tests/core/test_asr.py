"""The Whisper baseline (core/asr.py, `search --asr`): a tiny random Whisper of the real transformers classes,
loaded from a folder as a user's would be, its transcript searched as typed text; what is missing is named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from libfakes import make_image
from whisperfakes import make_tiny_whisper

from core.asr import Transcript, WhisperTranscriber
from core.errors import AudioDecodeError, CheckpointError, ConfigError, ModelNotFoundError


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    return make_tiny_whisper(tmp_path_factory.mktemp("whisper"))


def test_a_local_whisper_transcribes_the_same_recording_the_same_way(tiny_whisper):
    wav = (0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    whisper = WhisperTranscriber(tiny_whisper, "cpu")
    first, again = whisper.transcribe(wav), whisper.transcribe(wav)
    assert isinstance(first, Transcript) and first.text == again.text and first.elapsed_ms > 0
    assert first.language is None  # this tiny model emits no language token


@pytest.fixture(scope="module")
def multilingual_whisper(tmp_path_factory):
    return make_tiny_whisper(tmp_path_factory.mktemp("whisper-ml"), multilingual=True)


def test_a_multilingual_whisper_translates_into_english_with_its_own_task(multilingual_whisper, monkeypatch):
    """A query spoken in German, searched in English: Whisper's translate task, the language told or detected."""
    from transformers import WhisperForConditionalGeneration

    asked = []
    real = WhisperForConditionalGeneration.generate
    monkeypatch.setattr(WhisperForConditionalGeneration, "generate",
                        lambda self, *a, **kw: asked.append(kw) or real(self, *a, **kw))
    wav = (0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    told = WhisperTranscriber(multilingual_whisper, "cpu", "de", translate=True).transcribe(wav)
    assert told.translated and told.language == "de" and asked[-1]["task"] == "translate"
    assert asked[-1]["language"] == "de"
    found = WhisperTranscriber(multilingual_whisper, "cpu", translate=True).transcribe(wav)
    assert found.translated and found.language in ("en", "de")  # its own detection (random weights: either)
    assert asked[-1]["language"] == found.language and asked[-1]["task"] == "translate"
    plain = WhisperTranscriber(multilingual_whisper, "cpu").transcribe(wav)
    assert not plain.translated and asked[-1]["task"] == "transcribe"


def test_a_language_given_by_name_keeps_the_loaded_whisper(multilingual_whisper, model_dir, tmp_path):
    """The transcriber stores "German" as "de"; the service must still see the same setting and not load again."""
    from core.service import SearchService

    wav = tmp_path / "q.wav"
    sf.write(wav, (0.2 * np.random.default_rng(2).standard_normal(16000)).astype(np.float32), 16000)
    service = SearchService(model_dir, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", device="cpu")
    try:
        assert service.transcribe(wav, multilingual_whisper, "German", translate=True).language == "de"
        loaded = service._whisper
        service.transcribe(wav, multilingual_whisper, "German", translate=True)
        assert service._whisper is loaded
    finally:
        service.close()


def test_the_language_is_taken_by_code_or_name_and_an_unknown_one_is_named(multilingual_whisper):
    assert WhisperTranscriber(multilingual_whisper, "cpu", "German").language == "de"
    assert WhisperTranscriber(multilingual_whisper, "cpu", " DE ").language == "de"
    with pytest.raises(ConfigError, match="Whisper knows no language 'xx': give its code"):
        WhisperTranscriber(multilingual_whisper, "cpu", "xx")  # transformers' ValueError reached the user as a traceback


def test_an_english_only_whisper_cannot_translate_and_says_so(tiny_whisper):
    with pytest.raises(ConfigError, match="cannot translate: it is English-only .*not whisper-small.en"):
        WhisperTranscriber(tiny_whisper, "cpu", translate=True)


def test_a_missing_or_damaged_whisper_is_named_with_the_fix(tiny_whisper, tmp_path):
    with pytest.raises(ModelNotFoundError, match=f"whisper-small --local-dir {tmp_path / 'nowhere'}"):
        WhisperTranscriber(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match="`huggingface-cli download openai/whisper-not-cached`"):
        WhisperTranscriber("openai/whisper-not-cached")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_whisper.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes((tiny_whisper / "model.safetensors").read_bytes()[:500])
    with pytest.raises((CheckpointError, ModelNotFoundError), match="Whisper model"):
        WhisperTranscriber(broken)


def test_cli_searches_the_transcript_as_typed_text(tiny_whisper, multilingual_whisper, tmp_path, model_dir, capsys,
                                                   monkeypatch):
    from core.__main__ import main

    monkeypatch.setenv("SPOKENSEARCH_DATADIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOKENSEARCH_CACHEDIR", str(tmp_path / "cache"))
    for i in range(3):
        make_image(tmp_path / "photos" / f"{i}.jpg", i)
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "q.wav", (0.2 * rng.standard_normal(16000)).astype(np.float32), 16000)
    assert main(["index", str(tmp_path / "photos"), "--model", model_dir, "--no-progress"]) == 0
    capsys.readouterr()
    heard = []
    real = WhisperTranscriber.transcribe
    monkeypatch.setattr(WhisperTranscriber, "transcribe",  # the real model ran; its random words replaced by a sentence
                        lambda self, wav: heard.append(real(self, wav)) or Transcript("a red dog", "en", 12.0))
    assert main(["search", "--audio", str(tmp_path / "q.wav"), "--asr", str(tiny_whisper), "--model", model_dir,
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(heard) == 1 and out["transcript"] == {"text": "a red dog", "language": "en", "translated": False,
                                                     "elapsed_ms": 12.0, "model": str(tiny_whisper)}
    assert out["keywords"] == [] and len(out["hits"]) == 3  # searched as text: the speech model did not run
    assert main(["search", "--audio", str(tmp_path / "q.wav"), "--asr", str(tiny_whisper), "--model", model_dir]) == 0
    assert capsys.readouterr().out.startswith("whisper heard: a red dog  [en]\n")
    for argv in (["--asr", str(tiny_whisper), "--text", "a dog"], ["--asr", str(tiny_whisper), "--image", "x.jpg"]):
        with pytest.raises(SystemExit) as usage:
            main(["search", *argv, "--model", model_dir])
        assert usage.value.code == 2 and "--asr transcribes --audio" in capsys.readouterr().err
    monkeypatch.setattr(WhisperTranscriber, "transcribe",  # as a multilingual Whisper translating German says
                        lambda self, wav: Transcript("a red dog", "de", 12.0, translated=self.translate))
    assert main(["search", "--audio", str(tmp_path / "q.wav"), "--asr", str(multilingual_whisper), "--asr-translate",
                 "--model", model_dir]) == 0
    assert capsys.readouterr().out.startswith("whisper heard: a red dog  [de, translated]\n")
    with pytest.raises(SystemExit) as usage:
        main(["search", "--audio", str(tmp_path / "q.wav"), "--asr-translate", "--model", model_dir])
    assert usage.value.code == 2 and "--asr-translate is Whisper's" in capsys.readouterr().err
    monkeypatch.setattr(WhisperTranscriber, "transcribe", lambda self, wav: Transcript("", None, 1.0))
    assert main(["search", "--audio", str(tmp_path / "q.wav"), "--asr", str(tiny_whisper), "--model", model_dir]) == 1
    assert "heard no word" in capsys.readouterr().err


def test_the_service_keeps_one_whisper_loaded_until_another_is_asked_for(tiny_whisper, model_dir, tmp_path):
    from core.service import SearchService

    wav = tmp_path / "q.wav"
    sf.write(wav, (0.2 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32), 16000)
    service = SearchService(model_dir, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", device="cpu")
    try:
        first = service.transcribe(wav, tiny_whisper)
        loaded = service._whisper
        assert service.transcribe(wav, tiny_whisper).text == first.text and service._whisper is loaded
        service.transcribe(wav, tiny_whisper, language="en")  # another setting: loaded again
        assert service._whisper is not loaded
        with pytest.raises(ConfigError, match="English-only"):  # translating asks for another Whisper
            service.transcribe(wav, tiny_whisper, language="en", translate=True)
        sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
        with pytest.raises(AudioDecodeError):
            service.transcribe(tmp_path / "silent.wav", tiny_whisper)
    finally:
        service.close()
