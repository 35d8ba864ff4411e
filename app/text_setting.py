"""The setting "Read text in photos (OCR)" applied to the library, and what the window says when the text cannot
be read (Tesseract or a language's data missing: core's message names what to install)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from app import operations as ops
from app.settings import AppSettings

logger = logging.getLogger(__name__)

TEXT_TOPIC = "text-in-photos"  # the message strip's topic for "the text in photos is not read"


def text_languages_of(s: AppSettings) -> str | None:
    """The languages the library is to read text in (SearchService.read_text), None when it is not to."""
    return (s.text_languages.strip() or AppSettings.text_languages) if s.read_text else None


def apply_text_setting(window: Any, languages: str | None, *, rescan: bool) -> None:
    """Read the text in photos in `languages` (None: not) from the library's next run on; a run reading text now
    stops its text phase (ops.read_text). `rescan`: a quiet re-scan follows (it reads the photos already indexed,
    after a run going on). A service without text reading (an older core) only re-scans."""
    service = window.service
    if service is None:
        return
    if not hasattr(service, "read_text"):
        if rescan:
            window.library.index_folders(None, quiet=True)
        return

    def rescan_now() -> None:
        if rescan and service is window.service:
            window.library.index_folders(None, quiet=True)

    def done(_: Any) -> None:
        window.hide_message(TEXT_TOPIC)
        window.refresh_stats()
        rescan_now()

    def failed(exc: BaseException) -> None:
        _say_unavailable(window, exc)
        rescan_now()

    ops.read_text(window, service, languages).success(done).failure(failed).run()


def sync_text_setting(window: Any) -> None:
    """At start (a service loaded), before the start-up re-scan: reading text wins. A library that reads text (this
    app turned it on, or `core index --read-text`) shows it in the setting, in its languages; a library that does
    not is turned on when the setting is (a new library, after a damaged one was put aside)."""
    service = window.service
    if service is None or not hasattr(service, "read_text"):
        return
    wanted = text_languages_of(window.settings)

    def sync() -> str | None:
        if not service.text_languages() and wanted:
            service.read_text(wanted)
        return service.text_languages()

    def adopt(languages: str | None) -> None:
        window.hide_message(TEXT_TOPIC)
        s = window.settings
        if languages and service is window.service and (s.read_text, s.text_languages) != (True, languages):
            window.settings = replace(s, read_text=True, text_languages=languages)
            window.save_settings()

    ops.sync_text(window, sync).success(adopt).failure(lambda exc: _say_unavailable(window, exc)).run()


def _say_unavailable(window: Any, exc: BaseException) -> None:
    """The library cannot read text (core's OcrUnavailableError names what to install), with Settings…. Lasting:
    a search does not install Tesseract (the setting, a run that reads text or the close button settle it)."""
    window.show_message(f"The text in photos is not read: {str(exc).rstrip('.')}.", "warning",
                        ("Settings…", window.show_settings), topic=TEXT_TOPIC, lasting=True)


def say_text_not_read(window: Any, problem: str | None, said: set[str], *, read: int = 0) -> None:
    """An indexing run's IndexReport.text_problem (the library reads text but Tesseract went missing): said once
    per problem in `said` (every quiet re-scan meets it again), unless a warning that matters more is shown; a run
    that `read` text in photos settles the warning (what was missing is there now)."""
    bar = window.message_bar
    if not problem and read:
        window.hide_message(TEXT_TOPIC)
    if not problem or problem in said or not (bar.isHidden() or bar.level == "info"):
        return
    said.add(problem)
    logger.info("text in photos not read: %s", problem)
    window.show_message(f"The text in photos was not read: {problem}.", "warning",
                        ("Settings…", window.show_settings), topic=TEXT_TOPIC, lasting=True)
