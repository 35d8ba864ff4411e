"""About: what the app is, and the model card of the loaded model.

The card is shown as the model folder's human-written ``model_card.md`` when there is one, under a small table
of plain facts (name, source, device, …). Without it, the card's keys are listed with nested values cut to a
one-line summary: the trainer's model_card.json holds every metric (the default's is ~400 KB), which as text
froze the window for a second on each open and could not be read anyway.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from PySide6.QtGui import QTextCursor, QTextOption
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

logger = logging.getLogger(__name__)

# the facts shown above model_card.md (the rest of model_card.json is what the .md says in words)
FACT_KEYS = ("name", "architecture", "source", "device", "embed_dim", "image_size", "clip_identity")
INLINE_JSON_CHARS = 160  # a nested value at most this long (as one-line JSON) is shown as is, else summarised


def summarise(value: dict | list) -> str:
    """A one-line stand-in for a nested card value: the compact JSON when short, else its size and keys."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    if len(text) <= INLINE_JSON_CHARS:
        return text
    size = f"{len(text) / 1024:.0f} KB" if len(text) >= 1024 else f"{len(text)} characters"
    if isinstance(value, dict):
        keys = [str(k) for k in value]
        shown = ", ".join(keys[:6]) + (", …" if len(keys) > 6 else "")
        what = f"{len(keys)} entr{'y' if len(keys) == 1 else 'ies'} ({shown})"
    else:
        what = f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"{what}; {size}, see model_card.json"


def _table(rows: list[tuple[str, str]]) -> str:
    # the key column keeps its words whole (it was squeezed to one letter by a wide value)
    return ("<table cellspacing='4'>" + "".join(
        f"<tr><td valign='top' nowrap style='white-space:nowrap'><b>{html.escape(key)}</b></td>"
        f"<td>{html.escape(value)}</td></tr>" for key, value in rows) + "</table>")


def _cell(value: Any) -> str:
    return summarise(value) if isinstance(value, dict | list) else str(value)


def card_html(card: dict[str, Any] | None, log_file: str = "", markdown: str | None = None) -> str:
    """The About text as HTML: the intro, then either the plain facts (when `markdown`, the model_card.md, is
    shown below them) or every key of the card with nested values summarised."""
    intro = ("<h2>Spoken Image Search</h2><p>Speak a query and find matching photos from your own library, "
             "offline. Model: SpeechCLIP+ (a frozen HuBERT-family speech encoder and a frozen CLIP joined by a "
             "parallel and a CIF-cascaded branch). English speech only for the bundled model.</p>")
    if log_file:
        intro += f"<p style='color:gray'>Log file: {html.escape(log_file)}</p>"
    if not card:
        return intro + "<p><i>No model is loaded.</i></p>"
    if markdown:
        rows = [(key, _cell(card[key])) for key in FACT_KEYS if key in card]
        return intro + "<h3>Model</h3>" + _table(rows)
    return intro + "<h3>Model card</h3>" + _table([(str(key), _cell(value)) for key, value in card.items()])


class AboutDialog(QDialog):
    def __init__(self, card: dict[str, Any] | None, parent: QWidget | None = None,
                 markdown: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Spoken Image Search")
        self.resize(680, 560)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        # a long path or voice name wraps instead of forcing a horizontal scroll
        self.browser.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        from app.log_setup import log_file_path

        markdown = markdown if card else None
        self.browser.setHtml(card_html(card, str(log_file_path()), markdown))
        if markdown:
            cursor = QTextCursor(self.browser.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertMarkdown(markdown)
            self.browser.moveCursor(QTextCursor.MoveOperation.Start)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser, 1)
        lay.addWidget(box)
