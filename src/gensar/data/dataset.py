"""Reading a prepared dataset directory (the format of :mod:`gensar.data.schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from gensar.data import schema
from gensar.errors import DataError
from gensar.io import read_json


@dataclass
class Dataset:
    """A prepared dataset: four tables and the manifest that describes them.

    Tables are loaded lazily on first access, so ``load_dataset(path).manifest``
    is cheap.
    """

    path: Path
    manifest: dict[str, Any] = field(repr=False)

    def _table(self, name: str) -> pl.DataFrame:
        return self._open(name, pl.read_parquet)

    def scan(self, name: str) -> pl.LazyFrame:
        """A lazy scan of one table, its columns checked like the eager read.

        For statistics over the large ``samples`` table: a query on the scan reads
        only the columns it names and, collected with the streaming engine, holds
        a batch of rows at a time instead of the whole table.
        """
        return self._open(name, pl.scan_parquet)

    def _open(self, name: str, reader):
        filename, expected = schema.FILES[name]
        file = self.path / filename
        try:
            frame = reader(file)
            columns = frame.collect_schema()
        except FileNotFoundError:
            raise DataError(
                f"missing {filename}",
                where=self.path,
                fix="prepare the dataset again with `gensar prepare`",
            ) from None
        except Exception as err:  # noqa: BLE001 - any unreadable Parquet is the same user error
            raise DataError(
                f"cannot read {filename} ({err})",
                where=file,
                fix="prepare the dataset again with `gensar prepare`",
            ) from None
        for column, dtype in expected.items():
            if column not in columns:
                raise DataError(
                    f"column '{column}' is missing",
                    where=file,
                    fix="prepare the dataset again with this version of gensar",
                )
            if columns[column] != dtype:
                raise DataError(
                    f"column '{column}' has type {columns[column]}, expected {dtype}",
                    where=file,
                    fix="prepare the dataset again with this version of gensar",
                )
        return frame

    @cached_property
    def items(self) -> pl.DataFrame:
        return self._table("items")

    @cached_property
    def queries(self) -> pl.DataFrame:
        return self._table("queries")

    @cached_property
    def events(self) -> pl.DataFrame:
        return self._table("events")

    @cached_property
    def samples(self) -> pl.DataFrame:
        return self._table("samples")

    @cached_property
    def item_ids(self) -> list[str]:
        """Item ids in the dataset's item order (the row order of embeddings and identifiers)."""
        return self.items["item_id"].to_list()

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {item: row for row, item in enumerate(self.item_ids)}

    @cached_property
    def query_text(self) -> dict[str, str]:
        return dict(
            zip(self.queries["query_id"].to_list(), self.queries["text"].to_list(), strict=True)
        )

    @cached_property
    def item_text(self) -> dict[str, str]:
        return dict(zip(self.item_ids, self.items["text"].to_list(), strict=True))

    def samples_for(self, task: str, split: str) -> pl.DataFrame:
        """The samples of one task and split, in sample_id order."""
        if task not in schema.TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {schema.TASKS}")
        if split not in schema.SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {schema.SPLITS}")
        wanted = (pl.col("task") == task) & (pl.col("split") == split)
        if "samples" in self.__dict__:  # the whole table is loaded already
            return self.samples.filter(wanted)
        # Read only these rows (the file is sorted by task and split, so Parquet
        # statistics skip most of it): SASRec and the candidate lists need a
        # split or two, not the ~1 GB of histories of every training sample.
        return self.scan("samples").filter(wanted).collect()

    def samples_with_ids(self, sample_ids) -> pl.DataFrame:
        """The sample rows whose ``sample_id`` is in ``sample_ids`` (table order); read
        from the file alone unless the whole table is loaded already."""
        source = self.samples.lazy() if "samples" in self.__dict__ else self.scan("samples")
        ids = pl.Series("sample_id", sample_ids, dtype=pl.Int64)
        return source.filter(pl.col("sample_id").is_in(ids.implode())).collect()

    @cached_property
    def _heldout_time(self) -> dict[str, int]:
        """Per user, the earliest time of any validation or test target (either task)."""
        source = self.samples.lazy() if "samples" in self.__dict__ else self.scan("samples")
        held = (
            source.select("user_id", "split", "time")
            .filter(pl.col("split") != "train")
            .group_by("user_id")
            .agg(pl.col("time").min().alias("cutoff"))
            .collect()
        )
        return dict(zip(held["user_id"].to_list(), held["cutoff"].to_list(), strict=True))

    def rec_training_sequences(self) -> dict[str, list[str]]:
        """Each user's rec-item sequence with every held-out target removed.

        Keeps the ``rec_item`` events strictly earlier than the user's first
        validation or test target of either task, so a model trained on these
        (SASRec for the collaborative embeddings) never sees an evaluated item at
        its evaluated position. Users without held-out targets keep everything.
        """
        cutoff = pl.DataFrame(
            {"user_id": list(self._heldout_time), "cutoff": list(self._heldout_time.values())},
            schema={"user_id": pl.String, "cutoff": pl.Int64},
        )
        rec = (
            self.events.filter(pl.col("behaviour") == schema.REC_ITEM)
            .join(cutoff, on="user_id", how="left")
            .filter(pl.col("cutoff").is_null() | (pl.col("time") < pl.col("cutoff")))
            .sort("event_id")
            .group_by("user_id", maintain_order=True)
            .agg(pl.col("item_id"))
        )
        return dict(zip(rec["user_id"].to_list(), rec["item_id"].to_list(), strict=True))

    def rec_histories(self, samples: pl.DataFrame, max_len: int | None = None) -> list[list[str]]:
        """For each sample row, the user's rec items strictly before the sample's time.

        This is the input of sequential recommenders (SASRec), which read the whole
        recommendation sequence rather than the mixed 5+5 window of ``history``.
        """
        rec = self.events.filter(pl.col("behaviour") == schema.REC_ITEM).select(
            "user_id", "time", "item_id"
        )
        by_user: dict[str, tuple[list[int], list[str]]] = {}
        for user, times, items in (
            rec.group_by("user_id", maintain_order=True)
            .agg(pl.col("time"), pl.col("item_id"))
            .iter_rows()
        ):
            by_user[user] = (times, items)
        import bisect

        out: list[list[str]] = []
        for user, time in samples.select("user_id", "time").iter_rows():
            times, items = by_user.get(user, ([], []))
            end = bisect.bisect_left(times, time)
            start = 0 if max_len is None else max(0, end - max_len)
            out.append(items[start:end])
        return out

    def user_items(self) -> dict[str, set[str]]:
        """Every item each user interacted with (any behaviour), for negative sampling."""
        frame = (
            self.events.filter(pl.col("item_id").is_not_null())
            .group_by("user_id")
            .agg(pl.col("item_id").unique())
        )
        return {user: set(items) for user, items in frame.iter_rows()}


def load_dataset(path: str | Path) -> Dataset:
    """Open a prepared dataset directory, checking its manifest and schema version."""
    path = Path(path)
    manifest_file = path / schema.MANIFEST
    if not path.is_dir():
        raise DataError(
            "dataset directory not found",
            where=path,
            fix="prepare one with `gensar prepare --source NAME PATH --out DIR`",
        )
    if not manifest_file.is_file():
        raise DataError(
            f"no {schema.MANIFEST}: this is not a prepared gensar dataset",
            where=path,
            fix="prepare one with `gensar prepare --source NAME PATH --out DIR`",
        )
    try:
        manifest = read_json(manifest_file)
    except ValueError as err:
        raise DataError(
            f"manifest is not valid JSON ({err})",
            where=manifest_file,
            fix="prepare the dataset again",
        ) from None
    version = manifest.get("schema_version")
    if version != schema.SCHEMA_VERSION:
        raise DataError(
            f"dataset schema version {version} is not supported (this gensar reads version "
            f"{schema.SCHEMA_VERSION})",
            where=manifest_file,
            fix="prepare the dataset again with this version of gensar",
        )
    return Dataset(path=path, manifest=manifest)
