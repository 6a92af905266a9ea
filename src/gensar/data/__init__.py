"""Stage 1: raw logs -> one validated, canonical dataset directory."""

from gensar.data.dataset import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
