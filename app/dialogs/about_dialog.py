"""About: what the app is, and the model card of the loaded model."""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

logger = logging.getLogger(__name__)


def card_html(card: dict[str, Any] | None, log_file: str = "") -> str:
    """Render a model card dict (nested values as JSON) as a small HTML table."""
    intro = ("<h2>Spoken Image Search</h2><p>Speak a query and find matching photos from your own library, "
             "offline. Model: SpeechCLIP+ (a frozen HuBERT-family speech encoder and a frozen CLIP joined by a "
             "parallel and a CIF-cascaded branch). English speech only for the bundled model.</p>")
    if log_file:
        intro += f"<p style='color:gray'>Log file: {html.escape(log_file)}</p>"
    if not card:
        return intro + "<p><i>No model is loaded.</i></p>"
    rows = []
    for key, value in card.items():
        if isinstance(value, dict | list):  # indented JSON that still wraps at the dialog's width
            value = json.dumps(value, indent=1, ensure_ascii=False, default=str)
            cell = f"<span style='white-space:pre-wrap; font-family:monospace'>{html.escape(value)}</span>"
        else:
            cell = html.escape(str(value))
        # the key column keeps its words whole (it was squeezed to one letter by a wide value)
        rows.append(f"<tr><td valign='top' nowrap style='white-space:nowrap'><b>{html.escape(str(key))}</b></td>"
                    f"<td>{cell}</td></tr>")
    return intro + "<h3>Model card</h3><table cellspacing='4'>" + "".join(rows) + "</table>"


class AboutDialog(QDialog):
    def __init__(self, card: dict[str, Any] | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Spoken Image Search")
        self.resize(620, 520)
        self.browser = QTextBrowser()
        from app.log_setup import log_file_path

        self.browser.setHtml(card_html(card, str(log_file_path())))
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser, 1)
        lay.addWidget(box)
