"""Dataset readers (manifest, Flickr8k Audio, SpokenCOCO) returning Utterance records, and the torch Dataset."""

from __future__ import annotations

from trainer.data.flickr8k import read_flickr8k
from trainer.data.manifest import read_manifest
from trainer.data.records import Utterance, Word, check_files
from trainer.data.spokencoco import read_spokencoco

__all__ = ["Utterance", "Word", "check_files", "read_flickr8k", "read_manifest", "read_spokencoco"]
