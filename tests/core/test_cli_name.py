"""Usage and errors name the command as the user ran it: a console script or `python -m MODULE`."""

from __future__ import annotations

import sys

import pytest

from core.cli_name import program_name


@pytest.mark.parametrize(("argv0", "expected"), [
    ("/home/u/.venv/bin/spoken-search", "spoken-search"),
    ("spoken-trainer", "spoken-trainer"),
    ("/repo/core/__main__.py", "python -m core"),
    ("-c", "python -m core"),
    ("", "python -m core"),
])
def test_the_program_is_named_as_it_was_started(monkeypatch, argv0, expected):
    monkeypatch.setattr(sys, "argv", [argv0])
    assert program_name("core") == expected


def test_the_search_cli_usage_names_the_console_script(monkeypatch, capsys):
    from core.__main__ import main

    monkeypatch.setattr(sys, "argv", ["/venv/bin/spoken-search", "--help"])
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("usage: spoken-search ")
