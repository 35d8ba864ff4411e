"""CLI glue for importing the authors' published checkpoints (the library code is core/official)."""
