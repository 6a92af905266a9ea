"""Results of several models laid out like the paper: tables, a trade-off plot, files.

``results_table_markdown`` writes one table per task and split, rows metrics and
columns models (paper Tables 3 and 4), the best value of each row in bold and
the second best underlined, plus a row with the paired t-test p-value of each
model against the best other model. ``plot_tradeoff`` draws search NDCG@10
against recommendation NDCG@10, one labelled point per model: a joint model
that is good at both sits top right. ``write_results`` saves all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from gensar.data.schema import RECOMMENDATION, SEARCH, SPLITS, TASKS
from gensar.evaluation.evaluate import FULL_PREFIX, EvaluationResult
from gensar.evaluation.metrics import (
    CANDIDATE_CUTOFFS,
    DEFAULT_TIES,
    FULL_CUTOFFS,
    SIGNIFICANCE_METRIC,
    TIE_RULE_TEXT,
)
from gensar.evaluation.significance import compare_to_best_other
from gensar.io import atomic_write_bytes, write_json, write_parquet

ROW_ORDER = (
    [f"{name}@{k}" for name, ks in CANDIDATE_CUTOFFS.items() for k in ks]
    + ["exact/HR@10", "exact/NDCG@10"]  # GenSAR without beam pruning, beside the beam rows
    + [f"{FULL_PREFIX}{name}@{k}" for name, ks in FULL_CUTOFFS.items() for k in ks]
)
DIGITS = 4


def results_table_markdown(
    results: Sequence[EvaluationResult],
    digits: int = DIGITS,
    *,
    spread: dict[str, dict[str, float]] | None = None,
    extra_rows: dict[str, dict[str, str]] | None = None,
) -> str:
    """Markdown tables by task and split: metrics down, models across.

    The best value of a row is **bold**; with three or more models the second
    best is <u>underlined</u> (with two, "second" would only mean "worse").
    Values are compared as printed, so numbers that look equal get the same mark.
    ``spread`` (``"model/task" -> metric -> std``) adds "± std" to a model's
    cells (means over seeds); ``extra_rows`` (label -> model -> text) adds rows
    such as the seeds or the training examples each model saw.
    """
    spread = spread or {}
    extra_rows = extra_rows or {}
    comparisons = compare_to_best_other(results)
    blocks: list[str] = []
    for (task, split), group in _groups(results).items():
        models = _unique([r.model for r in group])
        by_model = {r.model: r.metrics for r in group}
        names = [m for m in ROW_ORDER if any(m in r.metrics for r in group)]
        names += sorted({m for r in group for m in r.metrics} - set(names))
        lines = [
            f"### {task.capitalize()} ({split}, {len(group[0].sample_ids)} samples)",
            "",
            "| Metric | " + " | ".join(models) + " |",
            "|---|" + "---:|" * len(models),
        ]
        for name in names:
            shown = {m: round(by_model[m][name], digits) for m in models if name in by_model[m]}
            ordered = sorted(set(shown.values()), reverse=True)
            cells = []
            for model in models:
                if model not in shown:
                    cells.append("–")
                    continue
                text = f"{shown[model]:.{digits}f}"
                if len(shown) > 1 and shown[model] == ordered[0]:
                    text = f"**{text}**"
                elif len(shown) > 2 and len(ordered) > 1 and shown[model] == ordered[1]:
                    text = f"<u>{text}</u>"
                std = spread.get(f"{model}/{task}", {}).get(name)
                if std is not None:
                    text += f" ± {std:.{digits}f}"
                cells.append(text)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        tested = {m: comparisons.get((m, task, split)) for m in models}
        if any(c is not None for c in tested.values()):
            cells = [
                "–" if c is None else f"{c.p_value:.2g} (vs {c.other})" for c in tested.values()
            ]
            lines.append(f"| p, {SIGNIFICANCE_METRIC} vs best other | " + " | ".join(cells) + " |")
        for label, by_model in extra_rows.items():
            if any(m in by_model for m in models):
                cells = [by_model.get(m, "–") for m in models]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def plot_tradeoff(
    results: Sequence[EvaluationResult],
    path: str | Path,
    *,
    split: str = "test",
    metric: str = "NDCG@10",
) -> Path:
    """Save a scatter of search ``metric`` (x) against recommendation ``metric`` (y).

    Models evaluated on both tasks are labelled points; a model evaluated on only
    one task is drawn as a labelled dashed line at its value (vertical for search,
    horizontal for recommendation), so single-task baselines still show the bar
    a joint model has to clear.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    value: dict[str, dict[str, float]] = {}
    for result in results:
        if result.split == split and metric in result.metrics:
            value.setdefault(result.model, {})[result.task] = result.metrics[metric]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for model, tasks in value.items():
        if RECOMMENDATION in tasks and SEARCH in tasks:
            ax.scatter(tasks[SEARCH], tasks[RECOMMENDATION], s=40)
            ax.annotate(
                model,
                (tasks[SEARCH], tasks[RECOMMENDATION]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=9,
            )
        elif SEARCH in tasks:
            ax.axvline(tasks[SEARCH], linestyle="--", linewidth=1, color="grey")
            ax.annotate(
                model,
                (tasks[SEARCH], 0.02),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=8,
                color="grey",
                xytext=(3, 0),
                textcoords="offset points",
            )
        elif RECOMMENDATION in tasks:
            ax.axhline(tasks[RECOMMENDATION], linestyle="--", linewidth=1, color="grey")
            ax.annotate(
                model,
                (0.02, tasks[RECOMMENDATION]),
                xycoords=("axes fraction", "data"),
                fontsize=8,
                color="grey",
                xytext=(0, 3),
                textcoords="offset points",
            )
    ax.set_xlabel(f"search {metric} ({split})")
    ax.set_ylabel(f"recommendation {metric} ({split})")
    ax.set_title("Search vs recommendation")
    xs = [t[SEARCH] for t in value.values() if SEARCH in t] or [1.0]
    ys = [t[RECOMMENDATION] for t in value.values() if RECOMMENDATION in t] or [1.0]
    ax.set_xlim(0, max(max(xs) * 1.15, 1e-3))  # room for labels right of the best point
    ax.set_ylim(0, max(max(ys) * 1.15, 1e-3))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def per_sample_frame(results: Sequence[EvaluationResult]) -> pl.DataFrame:
    """Long table: one row per model, task, split and sample, one column per metric."""
    frames = []
    for result in results:
        columns = {
            "model": [result.model] * len(result.sample_ids),
            "task": [result.task] * len(result.sample_ids),
            "split": [result.split] * len(result.sample_ids),
            "sample_id": result.sample_ids,
        }
        columns.update({name: values for name, values in result.per_sample.items()})
        frames.append(pl.DataFrame(columns))
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def write_results(results: Sequence[EvaluationResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``results.md``, ``per_sample.parquet`` and ``tradeoff.png``."""
    out_dir = Path(out_dir)
    comparisons = compare_to_best_other(results)
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "per_sample": out_dir / "per_sample.parquet",
        "tradeoff": out_dir / "tradeoff.png",
    }
    ties = _ties(results)
    write_json(
        paths["json"],
        {
            "ties": ties,
            "results": [r.to_json() for r in results],
            "significance": [c._asdict() for c in comparisons.values()],
        },
    )
    text = f"{tie_header(ties)}\n\n{results_table_markdown(results)}"
    atomic_write_bytes(paths["markdown"], text.encode("utf-8"))
    write_parquet(per_sample_frame(results), paths["per_sample"])
    plot_tradeoff(results, paths["tradeoff"])
    return paths


def _ties(results: Sequence[EvaluationResult]) -> str:
    """The one tie rule of a set of results (mixing rules in one table is an error)."""
    rules = {r.ties for r in results} or {DEFAULT_TIES}
    if len(rules) > 1:
        raise ValueError(f"results computed under different tie rules {sorted(rules)}")
    return rules.pop()


def tie_header(ties: str) -> str:
    """The sentence every results header carries about ties."""
    return f"Tie rule: {TIE_RULE_TEXT[ties]}."


def _groups(results: Sequence[EvaluationResult]) -> dict[tuple[str, str], list[EvaluationResult]]:
    """Results by (task, split): recommendation before search (paper Tables 3, 4), then split."""
    groups: dict[tuple[str, str], list[EvaluationResult]] = {}
    for result in results:
        groups.setdefault((result.task, result.split), []).append(result)

    def order(key: tuple[str, str]) -> tuple[int, int]:
        task, split = key
        return (
            TASKS.index(task) if task in TASKS else len(TASKS),
            SPLITS.index(split) if split in SPLITS else len(SPLITS),
        )

    return {key: groups[key] for key in sorted(groups, key=order)}


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
