"""What a screen reader is told: the names and descriptions of the grid's cells, the keyword chips and the CIF
plot (app.accessible_text), read back through Qt's accessibility interfaces as an assistive tool reads them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from app.accessible_text import hit_description, hit_name, plot_description
from core.model.inference import Keyword, Segment
from tests.app.conftest import speech_like
from tests.app.fake_service import Hit, fake_query

pytestmark = pytest.mark.qt


def _a11y(widget):  # noqa: ANN001, ANN202
    from PySide6.QtGui import QAccessible

    return QAccessible.queryAccessibleInterface(widget)


def _name(iface) -> str:  # noqa: ANN001
    from PySide6.QtGui import QAccessible

    return iface.text(QAccessible.Text.Name)


def _description(iface) -> str:  # noqa: ANN001
    from PySide6.QtGui import QAccessible

    return iface.text(QAccessible.Text.Description)


def test_a_hit_is_named_by_its_file_and_score_and_a_text_match_says_what_it_shows():
    photo = Hit(1, Path("/pics/2024/photo_03.jpg"), 0.8123, 0.0)
    assert hit_name(photo) == "photo_03.jpg, score 0.812"
    assert hit_description(photo) == f"In {Path('/pics/2024')}."
    receipt = Hit(2, Path("/pics/receipt.png"), 0.0, 0.0, text="REFUND approved on 3 May")
    assert hit_name(receipt) == "receipt.png, text match"
    assert hit_description(receipt, ["refund"]).endswith("Shows “refund”: REFUND approved on 3 May")
    clip = SimpleNamespace(path="/v/clip.mp4", score=0.64, at_s=12.2)
    assert hit_name(clip) == "clip.mp4, video, best match at 0:12, score 0.640"


def test_the_plot_is_described_unit_by_unit():
    segs = [Segment(0.0, 0.3), Segment(0.3, 0.62)]
    text = plot_description(segs, ["red", ""], 1.5, unused_from_s=0.62)
    assert text.startswith("1.50 seconds of audio cut into 2 units")
    assert "unit 1, 0.00 to 0.30 s: red; unit 2, 0.30 to 0.62 s." in text
    assert "From 0.62 s on, the model ignores the rest" in text
    assert "no speech units" in plot_description([], [], 0.4)
    many = plot_description([Segment(i, i + 1) for i in range(45)], [], 45.0)
    assert many.endswith("and 5 more.")


def test_grid_cells_tell_a_screen_reader_the_file_and_score(qtbot, tmp_path):
    from app.models import ResultsModel
    from app.widgets.results_grid import ResultsGrid

    model = ResultsModel()
    grid = ResultsGrid(model)
    qtbot.addWidget(grid)
    model.set_hits([Hit(1, tmp_path / "a.jpg", 0.5, 0.0), Hit(2, tmp_path / "beach.jpg", 0.7, 1.0)])
    view = _a11y(grid.view)
    assert view.childCount() == 2
    first = view.child(0)
    assert _name(first) == "beach.jpg, score 0.700"  # best first, as painted
    assert _description(first) == f"In {tmp_path}."


def test_keyword_chips_are_named_by_word_score_and_time(qtbot):
    from PySide6.QtCore import Qt

    from app.widgets.keyword_chips import KeywordChips

    chips = KeywordChips()
    qtbot.addWidget(chips)
    chips.set_keywords([Keyword("dog", 0.2, 0.55, 0.834), Keyword("beach", 0.55, 0.9, 0.61)])
    chip = _a11y(chips.chips[0])
    assert _name(chip) == "dog, score 0.83"
    assert _description(chip) == "Heard from 0.20 to 0.55 seconds. Press to hear it."
    assert chips.focusPolicy() == Qt.FocusPolicy.NoFocus  # Tab goes to the chips, not to the (empty) row
    chips.set_keywords([Keyword("dog", 0.2, 0.55, 0.834)], playable=False)
    assert _description(_a11y(chips.chips[0])) == "Heard from 0.20 to 0.55 seconds."


def test_the_plot_describes_what_it_draws(qtbot):
    from app.widgets.cif_plot import CifPlot

    plot = CifPlot()
    qtbot.addWidget(plot)
    plot.clear_all("Hold Space and speak, or pick a sample query")
    assert _name(_a11y(plot)).startswith("What the model heard")
    assert _description(_a11y(plot)) == "Hold Space and speak, or pick a sample query"
    query = fake_query(speech_like())
    plot.set_query(query)
    text = _description(_a11y(plot))
    n = len(query.segments)
    assert f"cut into {n} units" in text and "unit 1, 0.00 to" in text and ": red;" in text and ": car" in text
    plot.clear_all()
    assert _description(_a11y(plot)) == "No speech shown"


def unnamed_controls(top) -> list[str]:  # noqa: ANN001
    """The controls Tab reaches in `top` whose accessible name is missing, a glyph ("✕", "● Record"), or (for
    fields, lists and combo boxes, which Qt names by their value) not set to what they are for."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QAbstractItemView, QAbstractSpinBox, QComboBox, QLineEdit, QWidget

    bad = []
    for w in top.findChildren(QWidget):
        if not (w.focusPolicy() & Qt.FocusPolicy.TabFocus) or not w.isVisibleTo(top) or w.focusProxy() is not None \
                or w.objectName() == "qt_spinbox_lineedit":
            continue
        name = _name(_a11y(w))
        valued = isinstance(w, QComboBox | QAbstractSpinBox | QLineEdit | QAbstractItemView)
        if not name or not name[0].isalnum() or (valued and not w.accessibleName() and not _has_buddy(w)):
            bad.append(f"{type(w).__name__} {name!r}")
    return bad


def _has_buddy(w) -> bool:  # noqa: ANN001
    from PySide6.QtWidgets import QLabel

    return any(label.buddy() is w for label in w.window().findChildren(QLabel))


def test_every_control_tab_reaches_has_a_worded_name(qtbot, make_window, fake_service, photos):
    from app.dialogs.settings_dialog import SettingsDialog
    from app.settings import AppSettings

    w = make_window(fake_service, settings=AppSettings(first_run_done=True))
    with qtbot.waitSignal(w.library.changed, timeout=10_000):
        w.library.index_folders([photos], show_dialog=False)
    with qtbot.waitSignal(w.search.result_shown, timeout=10_000):
        w.search.search_text("anything")  # the preview's buttons are enabled
    w.show_message("A message", "warning")
    assert unnamed_controls(w) == []
    assert _name(_a11y(w.message_bar.close_button)) == "Dismiss the message"
    assert _name(_a11y(w.message_bar)) == "Warning message" and _description(_a11y(w.message_bar)) == "A message"
    assert _description(_a11y(w.grid.view)) == w.grid.summary_text()
    assert _name(_a11y(w.preview.image)) == f"Preview of {w.grid.current_hit().path.name}"
    dlg = SettingsDialog(w.settings, [], w)
    qtbot.addWidget(dlg)
    assert unnamed_controls(dlg) == []
    assert _name(_a11y(dlg.text_languages)) == "Languages"
    from app.dialogs.index_progress import IndexProgressDialog
    from app.dialogs.library_dialog import LibraryDialog

    for other in (LibraryDialog([photos], 6, w), IndexProgressDialog(w)):
        qtbot.addWidget(other)
        assert unnamed_controls(other) == [], type(other).__name__


def test_the_record_button_says_record_or_stop(qtbot):
    from app.widgets.record_panel import RecordPanel

    panel = RecordPanel()
    qtbot.addWidget(panel)
    assert _name(_a11y(panel.record_button)) == "Record a spoken query"
    panel.set_recording(True)
    assert _name(_a11y(panel.record_button)) == "Stop recording"


def test_the_indexing_bar_is_named_and_says_its_step(qtbot):
    from app.dialogs.index_progress import IndexProgressDialog, read_progress

    dlg = IndexProgressDialog()
    qtbot.addWidget(dlg)
    dlg.set_progress(read_progress(SimpleNamespace(done=40, total=90, current="a.jpg", phase="embed")))
    bar = _a11y(dlg.bar)
    assert _name(bar) == "Indexing progress"
    assert _description(bar) == "Step 3 of 4: reading new photos: 40 of 90 photos"
