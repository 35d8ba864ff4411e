"""The photo library: scan, decode, thumbnails, embed, store (SQLite + resident vectors + hnswlib), update.

    lib = Library(data_dir, embedder.identity, dim=embedder.dim)
    report = yield from index_library(lib, ["~/Pictures"], embedder)
"""

from __future__ import annotations

from core.library.decode import MAX_PIXELS, DecodedImage, decode_image
from core.library.embedder import ClipImageEmbedder, ImageEmbedder
from core.library.indexer import IndexProgress, IndexReport, index_library
from core.library.library import ANN_MIN_VECTORS, Library, default_library_dir
from core.library.scan import FileEntry, content_hash, scan_roots
from core.library.store import ImageRow
from core.library.thumbnails import ThumbnailCache

__all__ = [
    "ANN_MIN_VECTORS",
    "MAX_PIXELS",
    "ClipImageEmbedder",
    "DecodedImage",
    "FileEntry",
    "ImageEmbedder",
    "ImageRow",
    "IndexProgress",
    "IndexReport",
    "Library",
    "ThumbnailCache",
    "content_hash",
    "decode_image",
    "default_library_dir",
    "index_library",
    "scan_roots",
]
