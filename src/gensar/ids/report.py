"""The identifier stage's report: per-level codebook usage and its plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gensar.ids.collisions import level_usage
from gensar.ids.identifiers import COLLABORATIVE, SEMANTIC, ItemIdentifiers


def usage_by_level(identifiers: ItemIdentifiers) -> list[dict[str, Any]]:
    """Codes used and perplexity of every level of the final identifiers, each level once.

    Learned levels are measured against K; a disambiguation level against the
    number of codes it needed (its ``of`` is max code + 1).
    """
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for kind in (SEMANTIC, COLLABORATIVE):
        matrix = identifiers.codes_matrix(kind)
        for j, level in enumerate(identifiers.levels[kind]):
            if level in seen:
                continue
            seen.add(level)
            disamb = level in identifiers.disambiguation_levels
            size = int(matrix[:, j].max()) + 1 if disamb else identifiers.codebook_size
            rows.append(
                {"level": level, "disambiguation": disamb, **level_usage(matrix[:, j], size)}
            )
    return rows


def plot_usage(levels: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Bar chart of the share of codes used and the normalised perplexity per learned level.

    Uses the Agg canvas directly (no pyplot), so it never touches a global backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    learned = [row for row in levels if not row["disambiguation"]]
    names = [row["level"] for row in learned]
    x = np.arange(len(names))
    fig = Figure(figsize=(max(4.0, 0.9 * len(names) + 2), 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.38
    ax.bar(x - width / 2, [r["usage"] for r in learned], width, label="codes used / K")
    ax.bar(
        x + width / 2,
        [r["perplexity"] / r["of"] for r in learned],
        width,
        label="perplexity / K",
    )
    ax.axhline(0.9, color="grey", linestyle="--", linewidth=0.8)
    for i, row in enumerate(learned):
        ax.annotate(
            f"{row['used']}", (x[i] - width / 2, row["usage"]), ha="center", va="bottom", fontsize=7
        )
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of the codebook")
    ax.set_title(title or "codebook usage per level")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path))
