"""`gensar inspect`: the statistics of paper Table 2 plus history and sample figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from gensar.data import schema
from gensar.data.dataset import load_dataset


def dataset_statistics(path: str | Path) -> dict[str, Any]:
    """Users, items, queries, rec and search interactions (Table 2), history lengths,
    samples per task and split, computed from the files (not copied from the manifest)."""
    ds = load_dataset(path)
    events = ds.events
    # Streamed from the file: the history column is only counted, never held whole.
    samples = (
        ds.scan("samples")
        .select("task", "split", "user_id", pl.col("history").list.len().alias("history_len"))
        .collect(engine="streaming")
    )
    by_behaviour = dict(events.group_by("behaviour").len().iter_rows())
    per_user = events.group_by("user_id").agg(
        (pl.col("behaviour") == schema.REC_ITEM).sum().alias("rec"),
        (pl.col("behaviour") == schema.SEARCH_QUERY).sum().alias("search"),
    )
    stats: dict[str, Any] = {
        "dataset": str(ds.path),
        "source": ds.manifest.get("source", {}).get("name"),
        "users": events["user_id"].n_unique(),
        "items": ds.items.height,
        "queries": ds.queries.height,
        "rec_interactions": by_behaviour.get(schema.REC_ITEM, 0),
        "search_interactions": by_behaviour.get(schema.SEARCH_ITEM, 0),
        "search_sessions": by_behaviour.get(schema.SEARCH_QUERY, 0),
        "rec_per_user_mean": round(float(per_user["rec"].mean()), 2),
        "search_sessions_per_user_mean": round(float(per_user["search"].mean()), 2),
        "tasks": {},
    }
    for task in schema.TASKS:
        part = samples.filter(pl.col("task") == task)
        lengths = part["history_len"]
        stats["tasks"][task] = {
            "users": part["user_id"].n_unique(),
            "samples": {
                split: part.filter(pl.col("split") == split).height for split in schema.SPLITS
            },
            "history_events_mean": round(float(lengths.mean()), 2) if part.height else 0.0,
            "history_events_median": float(lengths.median()) if part.height else 0.0,
            "history_events_max": int(lengths.max()) if part.height else 0,
        }
    stats["dropped"] = ds.manifest.get("dropped", {})
    return stats


def format_statistics(stats: dict[str, Any]) -> str:
    """A plain-text report laid out like paper Table 2, then the per-task figures."""
    lines = [
        f"Dataset {stats['dataset']} (source: {stats['source']})",
        "",
        f"{'#Users':>10} {'#Items':>10} {'#Queries':>10} {'#Interaction-R':>16} {'#Interaction-S':>16}",
        f"{stats['users']:>10,} {stats['items']:>10,} {stats['queries']:>10,} "
        f"{stats['rec_interactions']:>16,} {stats['search_interactions']:>16,}",
        "",
        f"search sessions: {stats['search_sessions']:,}; per user: "
        f"{stats['rec_per_user_mean']} rec items, {stats['search_sessions_per_user_mean']} search sessions",
        "",
        f"{'task':<15} {'users':>8} {'train':>9} {'valid':>8} {'test':>8} {'history mean':>13} {'median':>7} {'max':>5}",
    ]
    for task, t in stats["tasks"].items():
        s = t["samples"]
        lines.append(
            f"{task:<15} {t['users']:>8,} {s['train']:>9,} {s['valid']:>8,} {s['test']:>8,} "
            f"{t['history_events_mean']:>13} {t['history_events_median']:>7} {t['history_events_max']:>5}"
        )
    dropped = stats.get("dropped") or {}
    if dropped:
        lines += [
            "",
            "filtered out: "
            + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in dropped.items()),
        ]
    return "\n".join(lines)
