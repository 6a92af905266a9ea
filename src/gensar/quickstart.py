"""`gensar quickstart`: the whole pipeline on MovieLens-100K, with progress shown."""

from __future__ import annotations

import time
from pathlib import Path

from gensar.data.inspect import dataset_statistics, format_statistics


def run_quickstart(out: Path, *, log=print) -> None:
    from gensar.data.download import movielens_100k
    from gensar.data.prepare import prepare_dataset

    started = time.perf_counter()
    out = Path(out)
    log("[1/1] data: MovieLens-100K -> canonical dataset")
    raw = movielens_100k(log=log)
    dataset = out / "dataset"
    prepare_dataset("movielens", raw, dataset, log=log)
    log(format_statistics(dataset_statistics(dataset)))
    log(f"quickstart finished in {time.perf_counter() - started:.0f} s")
