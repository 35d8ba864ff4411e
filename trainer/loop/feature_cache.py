"""Image features of the frozen CLIP image tower, computed once and cached on disk.

The authors run the frozen image encoder on every batch (reference §1.6). Its output never changes while
it is frozen, so we encode each unique image once: the cache file is keyed by the tower's identity
(sha256 of its config + image weights) and, inside, by the image key (its path, or `synthetic:<id>`).
A different tower gets a different file; new images are added incrementally; a damaged file is rebuilt.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from core.errors import DatasetError
from trainer.checkpoint import save_checkpoint
from trainer.data.image_file import load_image
from trainer.data.records import problems_message
from trainer.distributed import DistInfo, broadcast_object

logger = logging.getLogger(__name__)

# image key -> PIL image or a preprocessed (3, H, W) tensor
ImageLoader = Callable[[str], Any]
SAVE_EVERY_S = 120.0  # an encoding run saves what it has this often (and when stopped)


def preprocess_images(clip: Any, keys: Sequence[str], loader: ImageLoader = load_image) -> torch.Tensor:
    """Keys -> (B, 3, H, W) preprocessed with the tower's own transform (tensors pass through)."""
    out = []
    for k in keys:
        img = loader(k)
        out.append(img if isinstance(img, torch.Tensor) else clip.preprocess(img))
    return torch.stack(out)


NO_STAMP = [-1, -1]  # a key that is not a file (synthetic images), or an entry cached before stamps were kept


def file_stamp(key: str) -> list[int]:
    """[size, mtime_ns] of the file `key`, or NO_STAMP."""
    try:
        st = os.stat(key)
    except (OSError, ValueError):
        return NO_STAMP
    return [st.st_size, st.st_mtime_ns]


class CachingStopped(Exception):
    """A stop request (Ctrl+C, SIGTERM) came while image features were encoded; what was encoded is saved."""


class ImageFeatureCache:
    """Features (N, E) float32 of a frozen ClipTower for a set of image keys, persisted in `cache_dir`.

    Each file's size and modification time are kept with its feature: a picture replaced at the same path
    (a dataset regenerated into the same folder) is encoded again, not served stale.
    """

    def __init__(self, clip: Any, cache_dir: str | Path, loader: ImageLoader = load_image) -> None:
        self.clip = clip
        self.loader = loader
        self.path = Path(cache_dir) / f"image_feats-{clip.identity[:16]}.pt"
        self.index: dict[str, int] = {}
        self.stamps: dict[str, list[int]] = {}
        self.feats = torch.zeros(0, 0)
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
            index = {k: i for i, k in enumerate(blob["keys"])}
            feats = blob["feats"].float()
            # a cache written before stamps were kept: its file entries are encoded again, once
            stamps = blob.get("stamps") or [NO_STAMP] * len(blob["keys"])
            self.stamps = {k: list(v) for k, v in zip(blob["keys"], stamps, strict=True)}
        except Exception as exc:  # truncated / damaged / foreign file: it is only a cache, so start it afresh
            logger.warning("the image-feature cache %s cannot be read (%s: %s); its images are encoded again and "
                           "the file replaced", self.path, type(exc).__name__, exc)
            self.index, self.stamps, self.feats = {}, {}, torch.zeros(0, 0)
            return
        if feats.shape[0] != len(index):
            logger.warning("the image-feature cache %s holds %d features for %d keys; its images are encoded "
                           "again and the file replaced", self.path, feats.shape[0], len(index))
            self.index, self.stamps, self.feats = {}, {}, torch.zeros(0, 0)
            return
        self.index, self.feats = index, feats

    def __len__(self) -> int:
        return len(self.index)

    @torch.no_grad()
    def ensure(self, keys: Sequence[str], dist: DistInfo | None = None, batch_size: int = 64,
               device: torch.device | None = None, should_stop: Callable[[], bool] | None = None) -> int:
        """Encode the keys not cached yet, or whose file changed (rank 0 only; the others wait and reload).
        Returns how many were encoded; raises one DatasetError listing every image that cannot be decoded
        (on every rank), after saving the features of the others; CachingStopped (on every rank) when
        `should_stop()` turned true on rank 0 between batches, what was encoded saved."""
        now = {k: file_stamp(k) for k in set(keys)}
        todo = sorted(k for k, stamp in now.items() if k not in self.index or self.stamps.get(k) != stamp)
        distributed = dist is not None and dist.distributed
        if not todo and not distributed:
            return 0
        # Under DDP every rank reaches the broadcast below, whatever it found: a rank that built this cache
        # object after rank 0 had saved the file sees nothing missing, and skipping the wait deadlocked. It
        # carries rank 0's verdict, so an undecodable image stops every rank, not rank 0 alone.
        error = stopped = None
        if todo and (dist is None or dist.is_main):
            try:
                error = self._encode(todo, now, batch_size, device, should_stop)
            except CachingStopped as exc:
                stopped = str(exc)
        if distributed:
            error, stopped = broadcast_object((error, stopped))
            if not dist.is_main:
                self._load()
        if stopped:
            raise CachingStopped(stopped)
        if error:
            raise DatasetError(error)
        return len(todo)

    @torch.no_grad()
    def _encode(self, todo: list[str], now: dict[str, list[int]], batch_size: int,
                device: torch.device | None, should_stop: Callable[[], bool] | None = None) -> str | None:
        """Encode and save the features of `todo`; the images that cannot be decoded are skipped and all listed
        in the returned error (None when there is none). The others' features are saved, keyed by path and
        stamp as always: a re-run after the bad files are fixed encodes only those. What is encoded is also saved
        every SAVE_EVERY_S seconds and when Ctrl+C / SIGTERM stops the run (SpokenCOCO's 123k images take
        minutes even on a GPU): a re-run encodes only the rest."""
        dev = device or next(self.clip.parameters()).device
        was_training = self.clip.training
        self.clip.eval()
        done: list[str] = []  # encoded, not saved yet; their features in `new`
        new: list[torch.Tensor] = []
        bad: list[str] = []
        saved = changed = 0
        last_save = time.monotonic()
        try:
            for i in range(0, len(todo), batch_size):
                if should_stop is not None and should_stop():
                    raise CachingStopped  # what is encoded is saved below
                keys, images = [], []
                for k in todo[i:i + batch_size]:
                    try:
                        img = self.loader(k)
                    except DatasetError as exc:  # load_image's "cannot decode": list them all, not the first
                        bad.append(f"{k} ({exc.__cause__ or exc})")
                        continue
                    images.append(img if isinstance(img, torch.Tensor) else self.clip.preprocess(img))
                    keys.append(k)
                if images:
                    new.append(self.clip.encode_image(torch.stack(images).to(dev)).cpu())
                    done.extend(keys)
                if done and time.monotonic() - last_save >= SAVE_EVERY_S:
                    changed += self._add(done, new, now)
                    saved, done, new, last_save = saved + len(done), [], [], time.monotonic()
        except (KeyboardInterrupt, CachingStopped) as exc:
            if done:
                self._add(done, new, now)
            kept, rest = saved + len(done), len(todo) - saved - len(done) - len(bad)
            if isinstance(exc, CachingStopped):  # the caller names the file
                message = f"those of {kept} images are saved; a re-run encodes only the other {rest}"
                raise CachingStopped(message) from None
            if kept:
                logger.warning("stopped while caching image features: those of %d images are saved in %s; a re-run "
                               "encodes only the other %d", kept, self.path, rest)
            raise
        finally:
            self.clip.train(was_training)
        if done:
            changed += self._add(done, new, now)
            saved += len(done)
        if saved:
            logger.info("cached image features of %d images in %s (%d changed since cached)", saved, self.path,
                        changed)
        if not bad:
            return None
        kept = f"; the features of the other {saved} were cached, so a re-run encodes only these" if saved else ""
        return problems_message(bad, f"images of {len(todo)} to encode cannot be decoded{kept}",
                                "replace or remove them (or their lines of the dataset), then run again")

    def _add(self, done: list[str], new: list[torch.Tensor], now: dict[str, list[int]]) -> int:
        """Put the features `new` of the keys `done` into the cache and save it; how many replaced an entry."""
        feats = torch.cat(new).float()
        changed = [(j, self.index[k]) for j, k in enumerate(done) if k in self.index]
        added = [(j, k) for j, k in enumerate(done) if k not in self.index]
        if changed:
            self.feats[[row for _, row in changed]] = feats[[j for j, _ in changed]]
        if added:
            start = len(self.index)
            fresh = feats[[j for j, _ in added]]
            self.feats = fresh if start == 0 else torch.cat([self.feats, fresh])
            for n, (_, k) in enumerate(added):
                self.index[k] = start + n
        for k in done:
            self.stamps[k] = now[k]
        keys_sorted = sorted(self.index, key=self.index.__getitem__)
        save_checkpoint({"keys": keys_sorted, "feats": self.feats, "identity": self.clip.identity,
                         "stamps": [self.stamps.get(k, NO_STAMP) for k in keys_sorted]}, self.path)
        return len(changed)

    def lookup(self, keys: Sequence[str]) -> torch.Tensor:
        """(B, E) float32 features of `keys` (all must have been ensure()d)."""
        idx = [self.index[k] for k in keys]
        return self.feats[idx]
