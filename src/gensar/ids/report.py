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


def plot_report(report: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Two panels: codebook usage and perplexity per level; modal share of query groups by depth.

    The second panel draws each identifier's modal share next to the same figure
    for shuffled codes, so a reader sees at once whether the prefixes follow the
    queries. The title carries the fraction of variance unexplained per side.
    Uses the Agg canvas directly (no pyplot), so it never touches a global backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    learned = [row for row in report["codebook_usage"] if not row["disambiguation"]]
    names = [row["level"] for row in learned]
    x = np.arange(len(names))
    fig = Figure(figsize=(max(8.0, 0.9 * len(names) + 6), 3.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
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
    ax.set_title("codebook usage per level", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)

    ax2 = fig.add_subplot(1, 2, 2)
    by_level = report.get("diagnostics", {}).get("by_level", {})
    for kind, rows in by_level.items():
        depth = [r["depth"] for r in rows]
        line = ax2.plot(depth, [r["modal_share_query"] for r in rows], marker="o", label=kind)[0]
        ax2.plot(
            depth,
            [r["random_modal_share_query"] for r in rows],
            linestyle=":",
            color=line.get_color(),
            label=f"{kind}, shuffled codes",
        )
    ax2.set_xlabel("prefix depth (codes)")
    ax2.set_ylabel("modal share in query groups")
    ax2.set_ylim(0, 1.05)
    ax2.set_title("items of one query under one prefix", fontsize=9)
    ax2.legend(loc="upper right", fontsize=7)
    fvu = ", ".join(
        f"{k} {v['fraction_unexplained']:.2f}"
        for k, v in report.get("reconstruction", {}).items()
        if v.get("fraction_unexplained") is not None
    )
    fig.suptitle(f"{title}; variance unexplained: {fvu}" if fvu else title, fontsize=10)
    fig.tight_layout()
    fig.savefig(str(path))


def format_report(report: dict[str, Any]) -> str:
    """Plain-text tables of an ``index_report.json`` (what ``gensar index-report`` prints)."""
    lines = [
        f"identifiers: {report.get('method', 'rqvae')}, variant {report['variant']}, "
        f"{report['items']} items, K = {report['settings']['codebook_size']}",
        "",
        "reconstruction (fraction of variance unexplained):",
    ]
    for kind, rec in report["reconstruction"].items():
        fvu = rec.get("fraction_unexplained")
        lines.append(f"  {kind:<14} {fvu:.3f}" if fvu is not None else f"  {kind:<14} -")
    training = report.get("training", {})
    if "best_epoch" in training:
        lines.append(
            f"  (RQ-VAE checkpoint rule {training.get('checkpoint_rule', 'collisions')}: "
            f"epoch {training['best_epoch']})"
        )
    lines += ["", "collisions:  argmax  sinkhorn   final"]
    for kind, rates in report["collision_rate"].items():
        lines.append(
            f"  {kind:<14}{rates['argmax']:>7.2%}{rates['sinkhorn']:>10.2%}{rates['final']:>8.2%}"
        )
    lines += ["", "level  used     of  usage  perplexity"]
    for row in report["codebook_usage"]:
        mark = " (disambiguation)" if row["disambiguation"] else ""
        lines.append(
            f"  {row['level']:<5}{row['used']:>4}{row['of']:>7}{row['usage']:>7.1%}"
            f"{row['perplexity']:>12.1f}{mark}"
        )
    diag = report.get("diagnostics")
    if diag:
        lines += [
            "",
            f"agreement of prefixes (depth = codes) with categories and queries "
            f"({diag['query_groups']} query groups of >= {diag['min_group']} items; "
            f"random = shuffled codes):",
            "  identifier     depth  prefixes  NMI cat (random)  NMI query (random)  "
            "modal share (random)",
        ]
        for kind, rows in diag["by_level"].items():
            for r in rows:
                lines.append(
                    f"  {kind:<14}{r['level']:>6}{r['prefixes']:>10}"
                    f"{r['nmi_category']:>9.3f} ({r['random_nmi_category']:.3f})"
                    f"{r['nmi_query']:>11.3f} ({r['random_nmi_query']:.3f})"
                    f"{r['modal_share_query']:>13.3f} ({r['random_modal_share_query']:.3f})"
                )
    timings = report.get("timings_s", {})
    if timings:
        lines += ["", "seconds: " + ", ".join(f"{k} {v}" for k, v in timings.items())]
    return "\n".join(lines)
