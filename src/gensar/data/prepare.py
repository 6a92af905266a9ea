"""`gensar prepare`: raw logs -> a validated dataset directory, written atomically."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field

from gensar import __version__
from gensar.config import Section, validate
from gensar.data import schema
from gensar.data.raw import validate_raw
from gensar.data.samples import SampleOptions, build_samples
from gensar.data.sources import registry
from gensar.errors import DataError
from gensar.io import (
    allow_overwrite,
    atomic_output_dir,
    check_output_dir,
    sha256_files,
    write_json,
    write_parquet,
)

_logger = logging.getLogger(__name__)


class PrepareConfig(Section):
    """Settings of `gensar prepare` (the `prepare:` section of a run config)."""

    samples: SampleOptions = Field(default_factory=SampleOptions)
    source_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the chosen loader (see `gensar prepare --help` and the README).",
    )


def prepare_dataset(
    source: str,
    path: str | Path,
    out: str | Path,
    config: PrepareConfig | None = None,
    *,
    log=None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Load ``path`` with the ``source`` loader, validate, build samples, write ``out``.

    Nothing is written unless every step succeeds: the directory is built under a
    temporary name and renamed into place. An existing ``out`` is replaced only if
    it is an earlier dataset (its ``manifest.json``) or ``overwrite``. Returns the manifest.
    """
    log = log or _logger.info
    check_output_dir(out, "dataset", overwrite=overwrite)
    config = config or PrepareConfig()
    loader = registry.get_loader(source)
    options = validate(loader.options, config.source_options, source="prepare.source_options")
    path = Path(path)
    if not path.exists():
        raise DataError(
            "input path not found", where=path, fix="give the directory (or file) of the raw data"
        )
    started = time.perf_counter()
    log(f"Reading {source} data from {path} ...")
    raw = validate_raw(loader.load(path, options))
    events = canonical_order(raw.events)
    log(
        f"  {raw.items.height:,} items, {raw.queries.height:,} queries, {events.height:,} events; building samples ..."
    )
    samples, dropped = build_samples(events, config.samples)
    if samples.height == 0:
        raise DataError(
            "no sample survives the history filters (every target lacks earlier rec or search history, "
            f"or users have fewer than {config.samples.min_samples_per_user} targets)",
            where=path,
            fix="check that the data has both search and recommendation events per user, or relax the samples.* options",
        )
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "gensar_version": __version__,
        "source": {"name": source, "path": str(path.resolve()), **raw.info},
        "options": {
            "samples": config.samples.model_dump(),
            "source": options.model_dump(mode="json"),
        },
        "counts": counts(raw.items, raw.queries, events, samples),
        "dropped": dropped,
        "seconds": None,
        "content_hash": None,
    }
    out = Path(out)
    with allow_overwrite(overwrite), atomic_output_dir(out, kind="dataset") as tmp:
        write_parquet(raw.items.drop("line", strict=False), tmp / "items.parquet")
        write_parquet(raw.queries.drop("line", strict=False), tmp / "queries.parquet")
        write_parquet(events, tmp / "events.parquet")
        write_parquet(samples, tmp / "samples.parquet")
        manifest["content_hash"] = sha256_files(tmp / name for name, _ in schema.FILES.values())
        manifest["seconds"] = round(time.perf_counter() - started, 2)
        write_json(tmp / schema.MANIFEST, manifest)
    log(f"Wrote {out} ({samples.height:,} samples) in {manifest['seconds']} s")
    return manifest


def canonical_order(events: pl.DataFrame) -> pl.DataFrame:
    """Sort by user and time; at equal time rec events first, then search sessions one
    after another (a query before its clicks), then input order; number the rows."""
    rank = pl.col("behaviour").replace_strict(schema.BEHAVIOUR_RANK, return_dtype=pl.Int8)
    is_search = (pl.col("behaviour") != schema.REC_ITEM).cast(pl.Int8)
    session_start = pl.col("_input").min().over("user_id", "session_id")
    ordered = (
        events.with_row_index("_input")
        .with_columns(
            pl.when(pl.col("session_id").is_null())
            .then(pl.col("_input"))
            .otherwise(session_start)
            .alias("_session")
        )
        .sort("user_id", "time", is_search, "_session", rank, "_input")
        .drop("_input", "_session", "line", strict=False)
        .with_columns(  # a click carries the query of its session
            pl.col("query_id").fill_null(
                pl.col("query_id").drop_nulls().first().over("user_id", "session_id")
            )
        )
        .with_row_index("event_id")
        .with_columns(pl.col("event_id").cast(pl.Int64))
    )
    return ordered.select(list(schema.EVENTS_SCHEMA))


def counts(
    items: pl.DataFrame, queries: pl.DataFrame, events: pl.DataFrame, samples: pl.DataFrame
) -> dict[str, Any]:
    """The statistics of paper Table 2 plus sample counts per task and split."""
    by_behaviour = dict(events.group_by("behaviour").len().iter_rows())
    per_split = {task: {split: 0 for split in schema.SPLITS} for task in schema.TASKS}
    for task, split, n in samples.group_by("task", "split").len().iter_rows():
        per_split[task][split] = n
    return {
        "users": events["user_id"].n_unique(),
        "items": items.height,
        "queries": queries.height,
        "rec_interactions": by_behaviour.get(schema.REC_ITEM, 0),
        "search_interactions": by_behaviour.get(schema.SEARCH_ITEM, 0),
        "search_sessions": by_behaviour.get(schema.SEARCH_QUERY, 0),
        "events": events.height,
        "samples": per_split,
        "sample_users": {
            task: samples.filter(pl.col("task") == task)["user_id"].n_unique()
            for task in schema.TASKS
        },
    }
