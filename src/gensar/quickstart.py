"""`gensar quickstart`: the whole pipeline on MovieLens-100K, with progress shown.

Downloads ML-100K once (GroupLens, or the copy inside the recbole wheel on
PyPI), prepares it, builds the identifiers, trains a small GenSAR and the main
baselines, evaluates them on shared candidate lists and prints the table. The
settings are in ``gensar/configs/quickstart.yaml``.
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from pathlib import Path

_logger = logging.getLogger(__name__)


def run_quickstart(out: Path, *, log=None) -> None:
    log = log or _logger.info
    from gensar.benchmark import load_benchmark, run_benchmark
    from gensar.data.download import movielens_100k

    started = time.perf_counter()
    out = Path(out)
    config_file = resources.files("gensar") / "configs" / "quickstart.yaml"
    log("[quickstart] MovieLens-100K (downloaded once, then cached)")
    raw = movielens_100k(log=log)
    bench = load_benchmark(
        Path(str(config_file)),
        [f"dataset.path={raw}", f"dataset.prepared={out / 'dataset'}", f"out={out}"],
    )
    run_benchmark(bench, log=log)
    log(
        f"[quickstart] finished in {(time.perf_counter() - started) / 60:.1f} min; results in {out}/results.md"
    )
