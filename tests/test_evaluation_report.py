"""Paper-style tables (best bold, second underlined), the trade-off plot and result files."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from gensar.evaluation.evaluate import EvaluationResult
from gensar.evaluation.report import plot_tradeoff, results_table_markdown, write_results


def result(model: str, task: str, ndcg10: list[float], hr1: float) -> EvaluationResult:
    vector = np.array(ndcg10)
    return EvaluationResult(
        model=model,
        task=task,
        split="test",
        metrics={"HR@1": hr1, "NDCG@10": float(vector.mean())},
        sample_ids=np.arange(vector.size),
        per_sample={"NDCG@10": vector},
    )


RESULTS = [
    result("A", "search", [0.9, 0.8, 0.7, 0.9], 0.5),
    result("B", "search", [0.5, 0.4, 0.6, 0.3], 0.25),
    result("C", "search", [0.1, 0.2, 0.1, 0.0], 0.5),
    result("A", "recommendation", [0.2, 0.3, 0.1, 0.2], 0.1),
    result("Pop", "recommendation", [0.0, 0.1, 0.0, 0.1], 0.0),
]


def row(table: str, title: str, metric: str) -> list[str]:
    block = table.split("### ")[[b.split(" ")[0] for b in table.split("### ")].index(title)]
    line = next(x for x in block.splitlines() if x.startswith(f"| {metric} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_table_marks_best_bold_and_second_underlined_per_row():
    table = results_table_markdown(RESULTS)
    assert table.index("### Recommendation") < table.index("### Search")  # paper order
    assert row(table, "Search", "NDCG@10") == ["**0.8250**", "<u>0.4500</u>", "0.1000"]
    # A tie for the best value: both bold, the next value underlined.
    assert row(table, "Search", "HR@1") == ["**0.5000**", "<u>0.2500</u>", "**0.5000**"]
    # Two models only: the better is bold, the other is not "second best".
    assert row(table, "Recommendation", "NDCG@10") == ["**0.2000**", "0.0500"]
    p_values = row(table, "Search", "p, NDCG@10 vs best other")
    assert p_values[0].endswith("(vs B)") and p_values[1].endswith("(vs A)")


def test_tradeoff_plot_and_result_files(tmp_path):
    png = plot_tradeoff(RESULTS, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    paths = write_results(RESULTS, tmp_path / "results")
    summary = json.loads(paths["json"].read_text())
    assert len(summary["results"]) == 5
    assert {c["model"] for c in summary["significance"]} == {"A", "B", "C", "Pop"}
    per_sample = pl.read_parquet(paths["per_sample"])
    assert per_sample.height == 5 * 4
    assert per_sample.filter((pl.col("model") == "B") & (pl.col("task") == "search"))[
        "NDCG@10"
    ].to_list() == [0.5, 0.4, 0.6, 0.3]
    assert "**0.8250**" in paths["markdown"].read_text()
    assert paths["tradeoff"].stat().st_size > 1000
