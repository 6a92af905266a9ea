"""`gensar benchmark` end to end on the synthetic dataset: every model on the same lists."""

from __future__ import annotations

import hashlib
import json
import sys

import yaml

from gensar.cli import main

from conftest import TINY_OVERRIDES


def spy_on_candidate_lists(monkeypatch) -> dict[tuple[str, str], str]:
    """Record, per (model, task), a digest of every candidate list the model was asked to rank."""
    import gensar.evaluation.runner as runner

    received: dict[tuple[str, str], str] = {}
    real = runner.evaluate_ranker

    def evaluate_ranker(model, dataset, candidates, **kwargs):
        digest = hashlib.sha256()
        score = model.score_candidates

        def recording(samples, lists):
            for row in lists:
                digest.update(json.dumps(list(row)).encode())
            return score(samples, lists)

        model.score_candidates = recording
        try:
            return real(model, dataset, candidates, **kwargs)
        finally:
            del model.score_candidates
            received[(model.name, candidates.task)] = digest.hexdigest()

    monkeypatch.setattr(runner, "evaluate_ranker", evaluate_ranker)
    return received


def test_benchmark_writes_tables_and_every_model_ranks_the_same_lists(
    tiny_dataset, tmp_path, capsys, monkeypatch
):
    base: dict = {}
    for text in TINY_OVERRIDES:
        key, value = text.split("=", 1)
        node = base
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    base["train"]["epochs"] = 1
    config = {
        "name": "tiny",
        "dataset": {"prepared": str(tiny_dataset)},
        "out": str(tmp_path / "out"),
        "publish": str(tmp_path / "published"),
        "base": base,
        "models": [
            {"name": "GenSAR", "kind": "gensar", "exact_too": True},
            {
                "name": "GenSAR (rec only)",
                "kind": "gensar",
                "set": {"tasks.counts.nsip": 0, "tasks.counts.nsqp": 0},
            },
            {
                "name": "GenSAR (long)",
                "kind": "gensar",
                "own_budget": True,
                "set": {"train.epochs": 2},
            },
            {"name": "SASRec", "kind": "sasrec", "seeds": [0, 1]},
            {"name": "BM25", "kind": "bm25", "seeds": [0, 1]},
            {"name": "Popularity", "kind": "popularity"},
        ],
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    received = spy_on_candidate_lists(monkeypatch)
    old = sys.argv
    sys.argv = ["gensar", "benchmark", str(path)]
    try:
        main()
    except SystemExit as done:
        assert done.code in (0, None)
    finally:
        sys.argv = old
    out = tmp_path / "out"
    for name in ("results.md", "results.json", "tradeoff.png"):
        assert (out / name).stat().st_size > 0
    for name in ("tiny.md", "tiny.json", "tiny-tradeoff.png"):
        assert (tmp_path / "published" / name).is_file()
    summary = json.loads((out / "results.json").read_text())
    models = {(r["model"], r["task"]) for r in summary["results"]}
    assert ("GenSAR", "search") in models and ("GenSAR (rec only)", "recommendation") in models
    assert ("GenSAR (rec only)", "search") not in models
    assert ("SASRec", "recommendation") in models and ("BM25", "search") in models
    markdown = (out / "results.md").read_text()
    assert "| NDCG@10 |" in markdown and "The paper's claim" in markdown
    assert "Tie rule: expected" in markdown and summary["ties"] == "expected"
    assert all(r["ties"] == "expected" for r in summary["results"])
    # cheap models over two seeds: mean ± std cells and their seeds listed
    assert summary["seeds"]["SASRec"] == [0, 1] and summary["seeds"]["GenSAR"] == [0]
    assert "SASRec/recommendation" in summary["std"]
    assert " ± " in markdown and "| seeds |" in markdown
    # GenSAR's exact-scoring figure beside the beam one
    gensar = next(r for r in summary["results"] if r["model"] == "GenSAR" and r["task"] == "search")
    assert {"exact/NDCG@10", "NDCG@10"} <= set(gensar["metrics"])
    assert "| exact/NDCG@10 |" in markdown
    # equal budget: the single-task variant saw as many examples as the joint model
    seen = summary["examples_seen"]
    joint, single = seen["GenSAR"]["0"], seen["GenSAR (rec only)"]["0"]
    assert joint and single and abs(single - joint) <= 2 * base["train"].get("batch_size", 64)
    assert "| training examples seen |" in markdown
    # own_budget: a long run keeps its own settings (2 epochs), the others are not bound to it
    assert abs(seen["GenSAR (long)"]["0"] - 2 * joint) <= 2 * base["train"].get("batch_size", 64)
    assert "Except GenSAR (long): its own budget" in markdown
    # the variant reused the first run's embeddings and identifiers instead of rebuilding them
    printed = capsys.readouterr().out
    assert "[index] reused from gensar" in printed
    # the shared candidate lists are built once, not rewritten by each model's run
    assert "[candidates] building" not in printed
    assert "[candidates] the benchmark's shared lists" in printed
    # every model received byte-identical candidate lists for each task
    for task in ("recommendation", "search"):
        digests = {name: digest for (name, t), digest in received.items() if t == task}
        assert len(digests) >= 3, digests
        assert len(set(digests.values())) == 1, digests
