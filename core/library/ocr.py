"""Text in photos (OCR): Tesseract through tesserocr, in process, one engine per thread.

Optional: `pip install tesserocr` (a wheel with libtesseract inside) plus Tesseract's language data
(`tesseract-ocr-eng` on Debian, `tesseract` on Homebrew; TESSDATA_PREFIX points elsewhere). Words are kept only
when Tesseract is confident of them and they look like words: a photo of leaves or a brick wall gives
nothing rather than noise like "~ |l ee".
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
import threading
from pathlib import Path

from PIL import Image

from core.errors import OcrUnavailableError

__all__ = ["OcrUnavailableError", "TextReader", "check_languages", "find_tessdata", "installed_languages",
           "ocr_engine_available"]

logger = logging.getLogger(__name__)

DEFAULT_LANGUAGES = "eng"
# pixels read at most: a 12 MP photo is read at 2000x1500, where a sign in it stays legible (4x the pixels costs ~4x);
# a phone's scrolling screenshot 1170x7000 at 708x4236, its lines at 60 % (a cap of 2000 px on the longest side
# read it at 334x2000, where Tesseract got 59 % of its words; 15 % of a 1170x10000 one)
OCR_MAX_PIXELS = 2000 * 1500
MIN_CONFIDENCE = 70.0  # Tesseract's 0-100 per-word confidence; below, a textured photo's "words" are noise
MIN_SIDE = 32  # px: smaller images hold no legible word
_LANGS = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
NOT_LANGUAGES = {"osd": "orientation and script detection", "equ": "equation detection"}  # .traineddata too
# where distributions put the language data (tessdata): Debian/Ubuntu, Fedora, Homebrew, MacPorts, Windows
_TESSDATA_GLOBS = ("/usr/share/tesseract-ocr/*/tessdata", "/usr/share/tesseract-ocr/tessdata", "/usr/share/tessdata",
                   "/usr/local/share/tessdata", "/opt/homebrew/share/tessdata", "/opt/local/share/tessdata",
                   r"C:\Program Files\Tesseract-OCR\tessdata")


def ocr_engine_available() -> bool:
    """Whether the tesserocr module imports (the language data is checked by `TextReader`)."""
    try:
        import tesserocr  # noqa: F401
    except ImportError:
        return False
    return True


def _tessdata_folders() -> list[str]:
    """Where language data may be: TESSDATA_PREFIX (the folder itself or its tessdata/), then the usual places
    (the newest Tesseract version's folder first)."""
    prefix = os.environ.get("TESSDATA_PREFIX")
    folders = [prefix, os.path.join(prefix, "tessdata")] if prefix else []
    for pattern in _TESSDATA_GLOBS:
        folders += sorted(glob.glob(pattern), reverse=True)
    return folders


def find_tessdata(languages: str = DEFAULT_LANGUAGES) -> Path | None:
    """The first tessdata folder that holds every language of `languages` ("eng+deu"); None when none does."""
    wanted = languages.split("+")
    for folder in _tessdata_folders():
        if all(os.path.isfile(os.path.join(folder, f"{lang}.traineddata")) for lang in wanted):
            return Path(folder)
    return None


def installed_languages() -> list[str]:
    """Every language whose data is in some tessdata folder (eng, deu, ...), sorted."""
    found = {Path(f).stem for folder in _tessdata_folders() for f in glob.glob(os.path.join(folder, "*.traineddata"))}
    return sorted(found - set(NOT_LANGUAGES))


def check_languages(languages: str) -> str:
    """`languages` as Tesseract takes it ("eng", "eng+deu"), or OcrUnavailableError naming what is missing."""
    languages = languages.strip()
    if not _LANGS.match(languages):
        raise OcrUnavailableError(f"{languages!r} is not a list of Tesseract languages; write e.g. eng or eng+deu")
    other = [lang for lang in languages.split("+") if lang in NOT_LANGUAGES]
    if other:
        raise OcrUnavailableError(f"{other[0]} is Tesseract's {NOT_LANGUAGES[other[0]]}, not a language to read; "
                                  "write e.g. eng or eng+deu")
    if not ocr_engine_available():
        raise OcrUnavailableError("reading text in photos needs tesserocr: pip install tesserocr (or "
                                  "pip install -e '.[ocr]'), and Tesseract's language data (Debian: "
                                  "apt install tesseract-ocr-eng)")
    if find_tessdata(languages) is None:
        have = installed_languages()
        raise OcrUnavailableError(
            f"no Tesseract language data for {languages} (found: {', '.join(have) or 'none'}); install it "
            f"(Debian: apt install {' '.join('tesseract-ocr-' + lang for lang in languages.split('+'))}) or set "
            "TESSDATA_PREFIX to the folder that holds the .traineddata files")
    return languages


def ocr_size(width: int, height: int) -> tuple[int, int]:
    """The size an image of `width` x `height` is read at: its own, or scaled down (its aspect kept) to hold at
    most OCR_MAX_PIXELS."""
    if width * height <= OCR_MAX_PIXELS:
        return width, height
    scale = math.sqrt(OCR_MAX_PIXELS / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def clean_words(words: list[tuple[str, float]], min_confidence: float = MIN_CONFIDENCE) -> str:
    """The words worth keeping, in reading order, one space apart: confident and with two letters or digits
    (a stray stroke of a texture reads as "l", "|" or "y~"); nothing when no word has three (the demo photos'
    shapes read as a lone "Ov" or "Ol" at 84-94 % confidence)."""
    kept = [w.strip() for w, conf in words if conf >= min_confidence and _alnum(w) >= 2]
    return " ".join(kept) if any(_alnum(w) >= 3 for w in kept) else ""


def merge_texts(texts: list[str]) -> str:
    """The first reading, then the words of the others it lacks (compared without case), in their order."""
    out = texts[0].split() if texts else []
    seen = {w.lower() for w in out}
    for text in texts[1:]:
        for w in text.split():
            if w.lower() not in seen:
                seen.add(w.lower())
                out.append(w)
    return " ".join(out)


def _alnum(word: str) -> int:
    return sum(ch.isalnum() for ch in word)


def _words(api: object, level: int) -> list[tuple[str, float]]:
    """(word, confidence) in reading order; an empty page has none (its iterator raises on the first word)."""
    import tesserocr

    out: list[tuple[str, float]] = []
    iterator = api.GetIterator()  # type: ignore[attr-defined]
    if iterator is None:
        return out
    for w in tesserocr.iterate_level(iterator, level):
        try:
            out.append((w.GetUTF8Text(level) or "", w.Confidence(level)))
        except RuntimeError:  # "No text returned": a block without a word
            continue
    return out


class TextReader:
    """Reads the text in an image. One Tesseract engine per thread (an engine is not thread-safe; it releases
    the GIL while it reads, so threads read in parallel)."""

    def __init__(self, languages: str = DEFAULT_LANGUAGES, min_confidence: float = MIN_CONFIDENCE) -> None:
        self.languages = check_languages(languages)
        self.tessdata = find_tessdata(self.languages)
        self.min_confidence = min_confidence
        self._local = threading.local()
        self._engines: list[object] = []
        self._lock = threading.Lock()

    def _engines_here(self) -> list[object]:
        """This thread's two engines: one reads the page as sparse text (signs and labels anywhere in a photo),
        one as a page of blocks (a sign's dark plate, text on a plain page). Together they read 47 of
        bench_ocr.py's 50 tuning signs (--seed 1234), 43 and 42 alone, at ~1.8x the time of one."""
        engines = getattr(self._local, "engines", None)
        if engines is None:
            import tesserocr

            try:
                engines = [tesserocr.PyTessBaseAPI(path=str(self.tessdata) + os.sep, lang=self.languages, psm=psm)
                           for psm in (tesserocr.PSM.SPARSE_TEXT, tesserocr.PSM.AUTO)]
            except RuntimeError as exc:  # data of another Tesseract version, a truncated file
                raise OcrUnavailableError(
                    f"Tesseract cannot load {self.languages} from {self.tessdata} ({exc}); install its data again "
                    f"(Debian: apt install --reinstall {' '.join('tesseract-ocr-' + x for x in self.languages.split('+'))})"
                    " or set TESSDATA_PREFIX to a folder with data for this Tesseract") from exc
            self._local.engines = engines
            with self._lock:
                self._engines.extend(engines)
        return engines

    def read(self, image: Image.Image) -> str:
        """The text Tesseract is confident of in `image` (any mode), words one space apart; "" when none."""
        if min(image.size) < MIN_SIDE:
            return ""
        import tesserocr

        image = image.convert("L")  # grey in: 43 of the 50 tuning signs read, 37 when Tesseract gets colour
        width, height = image.size
        if width * height > OCR_MAX_PIXELS + max(width, height):  # (a row more: a loader's rounding, left as is)
            image = image.resize(ocr_size(width, height), Image.Resampling.LANCZOS)
        texts = []
        for api in self._engines_here():
            api.SetImage(image)  # type: ignore[attr-defined]
            api.Recognize()  # type: ignore[attr-defined]
            texts.append(clean_words(_words(api, tesserocr.RIL.WORD), self.min_confidence))
            api.Clear()  # type: ignore[attr-defined]
        return merge_texts(texts)

    def close(self) -> None:
        """Free every thread's engine (the reader is not used after)."""
        with self._lock:
            for api in self._engines:
                api.End()  # type: ignore[attr-defined]
            self._engines.clear()
