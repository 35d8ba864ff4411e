"""Small rows of the settings form."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget


def labelled_row(label: str, field: QWidget, hint: str) -> QHBoxLayout:
    """`label`, a short `field` and a grey `hint` after it, on one line (left-aligned)."""
    hint_label = QLabel(hint)
    hint_label.setStyleSheet("color: gray;")
    row = QHBoxLayout()
    name = QLabel(label)
    name.setBuddy(field)  # assistive tools read the label as the field's name
    row.addWidget(name)
    row.addWidget(field)
    row.addWidget(hint_label)
    row.addStretch(1)
    return row
