"""What the window shows about the library and the model: the status bar's model, device and photo counts, the
folders the results' Where offers, and the years and kinds their When and What offer. Read on the library lane."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import operations as ops
from core.wording import counted, held, plural

logger = logging.getLogger(__name__)


def _nothing() -> None:
    pass


def refresh_stats(window: Any, then: Callable[[], None] = _nothing) -> None:
    """The status bar's labels and the Where folders, from the service's stats (kept as `window.library_stats`);
    `then` once they are shown, or could not be read."""
    if window.service is None:
        then()
        return

    def show(stats: Any) -> None:
        name = str(stats.model_name)
        short = Path(name).name if os.sep in name or "/" in name else name
        window.model_label.setText(f"Model: {short}")
        window.model_label.setToolTip(name)
        window.device_label.setText(f"Device: {stats.device}")
        window.photos_label.setText(f"{held(stats.photos, int(getattr(stats, 'videos', 0) or 0))} in "
                                    f"{counted(len(stats.roots), 'folder')}")
        window.photos_label.setToolTip(texts_read_tip(int(getattr(stats, "texts_read", 0) or 0),
                                                      int(getattr(stats, "with_text", 0) or 0)))
        window.grid.where.set_folders([str(r) for r in stats.roots])
        window.library_stats = stats

    ops.get_stats(window, window.service).success(show).finally_(then).run()


def texts_read_tip(read: int, with_text: int) -> str:
    """The photo count's tooltip: in how many photos the text was read, and how many show some ("" for none)."""
    if read == 1:
        return f"Text read in 1 photo; it shows {'some' if with_text else 'none'}"
    return f"Text read in {read} photos, {with_text} of them {plural(with_text, 'shows', 'show')} some" if read else ""


def refresh_years(window: Any, then: Callable[[], None] = _nothing) -> None:
    """Offer the years of the library's photos in the results' date filter, and the photos / videos choice
    when it holds videos; `then` once they are, or could not be read."""
    service = window.service
    if service is None or not hasattr(service, "photo_years"):
        then()
        return

    def read(cancel: Any) -> tuple[list[int], bool]:
        has_videos = getattr(service, "has_videos", None)
        return service.photo_years(), bool(has_videos()) if has_videos is not None else False

    def show(found: tuple[list[int], bool]) -> None:
        window.grid.when.set_years(found[0])
        window.grid.kind.set_has_videos(found[1])

    (ops.Op(window, read, lane="library", what="Reading the photos' years")
     .success(show)
     .failure(lambda exc: logger.warning("could not read the years of the photos: %s", exc))
     .finally_(then).run())
