"""The model-family seam: a family defined only in the tests trains, is evaluated in the
benchmark table and is served, with no change to the package; and the shared modules
know no family."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from gensar.families import registry
from gensar.families.protocols import Ranker, Servable

SRC = Path(__file__).resolve().parents[1] / "src" / "gensar"


def _bench_file(
    tmp_path: Path, dataset: Path, name: str, models: list[dict], evaluate: dict | None = None
) -> Path:
    """A small benchmark YAML over the tiny dataset (short candidate lists), out ``bench/``."""
    base: dict = {"candidates": {"n_negatives": 19, "bm25_pool": 29}}
    if evaluate:
        base["evaluate"] = evaluate
    path = tmp_path / "bench.yaml"
    config = {
        "name": name,
        "dataset": {"prepared": str(dataset)},
        "out": str(tmp_path / "bench"),
        "base": base,
        "models": models,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_family_from_the_tests_trains_benchmarks_and_serves(toy, tiny_dataset, tmp_path):
    from gensar.benchmark import load_benchmark, run_benchmark
    from gensar.cli import main
    from gensar.serving import ServeConfig, create_app

    # `gensar train` with the family picked in the run config
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as done:
        main(["train", str(tiny_dataset), "--run", str(run), "--set", "model.family=toy"])
    assert done.value.code in (0, None)
    assert registry.family_of(run / "model") == "toy"
    assert isinstance(toy.load(run / "model"), Servable)

    # the benchmark table: the toy beside a baseline, through the one code path
    bench_file = _bench_file(
        tmp_path,
        tiny_dataset,
        "toy-bench",
        [
            {"name": "Toy", "family": "toy", "set": {"model.smoothing": 0.5}},
            {"name": "Popularity", "family": "popularity"},
        ],
        evaluate={"full_catalogue_samples": 20},
    )
    summary = run_benchmark(load_benchmark(bench_file), log=lambda *_: None)
    rows = {(r["model"], r["task"]): r["metrics"] for r in summary["results"]}
    assert {("Toy", "recommendation"), ("Toy", "search")} <= set(rows)
    assert "full/NDCG@10" in rows[("Toy", "recommendation")]  # the catalogue by score_all
    assert "| Toy |" in (tmp_path / "bench" / "results.md").read_text().replace("Toy |", "Toy |")
    toy_run = tmp_path / "bench" / "seed-0" / "toy"
    assert json.loads((toy_run / "model" / "toy.json").read_text())["counts"]
    assert isinstance(toy.ranker(toy_run, None, "Toy"), Ranker)

    # `gensar serve`'s app factory loads it by its family marker
    config = ServeConfig(store=tmp_path / "history.sqlite3", threads=1)
    item = toy.load(run / "model").item_ids[0]
    history = [{"behaviour": "rec_item", "item_id": item}]
    with TestClient(create_app(run / "model", tiny_dataset, config)) as client:
        answer = client.post("/recommend", json={"history": history, "k": 3})
        assert answer.status_code == 200, answer.text
        items = [i["item_id"] for i in answer.json()["items"]]
        assert len(items) == 3 and item not in items
        found = client.post("/search", json={"history": history, "query": "tape", "k": 2})
        assert found.status_code == 200, found.text
        assert client.get(f"/items/{item}").json()["item_id"] == item
        suggest = client.post("/suggest-queries", json={"history": history, "k": 2})
        assert suggest.status_code == 501, suggest.text


def test_an_unknown_family_is_one_line(capsys, tiny_dataset, tmp_path):
    from gensar.cli import main

    with pytest.raises(SystemExit) as done:
        main(["train", str(tiny_dataset), "--run", str(tmp_path / "r"), "-s", "model.family=nope"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model family 'nope'" in err and "\n" not in err.strip()


# -- the shared modules know no family ----------------------------------------------------------------
#: Registry names, matched as whole string constants (not "gensar": also the package's
#: name, "bm25"/"popularity" also name the candidate lists' negatives, so only exact
#: strings count), and the display names of the generative families, matched anywhere
#: in code (strings, names, attributes; not docstrings or comments).
FAMILY_NAMES = ("sasrec", "bm25", "dense", "popularity", "synergen", "gensr", "tiger")
DISPLAY_NAMES = ("GenSAR", "SASRec", "SynerGen", "GenSR", "TIGER")
NEUTRAL = ("evaluation", "serving", "pipeline.py", "benchmark.py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def test_no_module_outside_the_gensar_family_imports_its_internals():
    family = SRC / "families" / "gensar"
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in _sources()
        if family not in path.parents
        for name in _imports(path)
        if name.startswith("gensar.families.gensar")
    ]
    assert offenders == []


def test_evaluation_serving_pipeline_and_benchmark_name_no_family():
    offenders = []
    for entry in NEUTRAL:
        root = SRC / entry
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            for name in _imports(path):
                if name.startswith("gensar.families.") and name not in (
                    "gensar.families.protocols",
                    "gensar.families.registry",
                ):
                    offenders.append(f"{path.relative_to(SRC)} imports {name}")
                if name.startswith("gensar.baselines"):
                    offenders.append(f"{path.relative_to(SRC)} imports {name}")
            # code (not docstrings or comments) naming a family: string constants and names
            tree = ast.parse(path.read_text())
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(
                    node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                )
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                text = None
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if id(node) in docstrings:
                        continue
                    text = node.value
                elif isinstance(node, ast.Name):
                    text = node.id
                elif isinstance(node, ast.Attribute):
                    text = node.attr
                if text is None:
                    continue
                hits = {n for n in DISPLAY_NAMES if n in text}
                if isinstance(node, ast.Constant) and text.strip().lower() in FAMILY_NAMES:
                    hits.add(text.strip().lower())
                if hits:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} names {sorted(hits)}")
    assert offenders == []


def test_registry_table_loads_every_built_in_family():
    for name in registry.names():
        family = registry.get_family(name)
        assert family.name == name and family.Config().family == name


def test_old_benchmark_spelling_kind_still_reads():
    from gensar.benchmark import ModelSpec

    assert ModelSpec.model_validate({"name": "B", "kind": "bm25"}).family == "bm25"


def test_evaluate_batch_size_reaches_the_ranker(tiny_run, tiny_dataset):
    from conftest import tiny_run_config

    config = tiny_run_config(tiny_dataset, tiny_run, **{"evaluate.batch_size": 7})
    assert config.family.ranker(tiny_run, config).batch_size == 7


def test_every_trained_family_meets_the_protocols(tiny_run, tiny_dataset):
    from conftest import tiny_run_config

    config = tiny_run_config(tiny_dataset, tiny_run)
    assert isinstance(registry.load_model(tiny_run / "model"), Servable)
    assert isinstance(config.family.ranker(tiny_run, config), Ranker)
    for name in ("sasrec", "bm25", "dense", "popularity"):
        assert isinstance(registry.get_family(name).ranker(tiny_run, config), Ranker)


GENSR_TINY = {
    "model.backbone.d_model": 32,
    "model.backbone.num_layers": 1,
    "model.backbone.num_decoder_layers": 1,
    "model.backbone.num_heads": 2,
    "model.backbone.d_ff": 64,
    "model.vocab.size": 300,
    "model.vocab.multiword": False,
    "model.history_title_tokens": 4,
    "model.candidate_title_tokens": 3,
    "model.negatives": 3,
    "model.batch_size": 16,
    "model.eval_every": 4,
    "model.eval_samples": 10,
    "model.warmup_steps": 2,
    "collab.max_epochs": 3,
}
SYNERGEN_TINY = {
    "model.hidden": 16,
    "model.heads": 2,
    "model.layers": 1,
    "model.max_len": 16,
    "model.batch_size": 16,
    "model.eval_samples": 20,
    "model.epochs": 1,
    "model.rank_hard_negatives": 3,
    "model.rank_random_negatives": 3,
    "model.hard_pool": 10,
}


def test_gensr_and_synergen_are_registered_benchmarked_and_served(tiny_dataset, tmp_path):
    """GenSR and SynerGen go through the one benchmark path (their rows, examples seen)
    and `gensar serve` loads their model directories by the family marker."""
    from gensar.benchmark import load_benchmark, run_benchmark
    from gensar.serving import ServeConfig, create_app

    bench_file = _bench_file(
        tmp_path,
        tiny_dataset,
        "families-bench",
        [
            {"name": "GenSR", "family": "gensr", "set": GENSR_TINY},
            {"name": "SynerGen", "family": "synergen", "set": SYNERGEN_TINY},
            {"name": "Popularity", "family": "popularity"},
        ],
        evaluate={"full_catalogue_samples": 10},
    )
    summary = run_benchmark(load_benchmark(bench_file), log=lambda *_: None)
    rows = {(r["model"], r["task"]): r for r in summary["results"]}
    for name in ("GenSR", "SynerGen"):
        for task in ("recommendation", "search"):
            metrics = rows[(name, task)]["metrics"]
            assert 0.0 <= metrics["NDCG@10"] <= 1.0 and "full/NDCG@10" in metrics
    table = (tmp_path / "bench" / "results.md").read_text()
    assert "SynerGen" in table and "GenSR" in table
    # their own training time and examples (from the model cards) are rows of the table
    for row in ("training minutes", "training examples seen"):
        line = next(li for li in table.splitlines() if li.startswith(f"| {row}"))
        assert line.count("|") >= 4, line
    assert set(summary["training_seconds"]) >= {"GenSR", "SynerGen"}

    for family, folder in (("gensr", "gensr"), ("synergen", "synergen")):
        model_dir = tmp_path / "bench" / "seed-0" / family / folder
        assert registry.family_of(model_dir) == family
        model = registry.load_model(model_dir)
        assert isinstance(model, Servable)
        assert registry.get_family(family).examples_seen(model_dir.parent) > 0
        config = ServeConfig(store=tmp_path / f"{family}.sqlite3", threads=1)
        with TestClient(create_app(model_dir, tiny_dataset, config)) as client:
            history = [{"behaviour": "rec_item", "item_id": _first_item(tiny_dataset)}]
            answer = client.post("/recommend", json={"history": history, "k": 3})
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["items"]) == 3
            found = client.post("/search", json={"history": history, "query": "tape", "k": 2})
            assert found.status_code == 200, found.text


def _first_item(dataset_dir: Path) -> str:
    from gensar.data.dataset import load_dataset

    return load_dataset(dataset_dir).item_ids[0]


def test_train_only_builds_runs_the_full_benchmark_then_reuses(tiny_dataset, tmp_path):
    """`gensar benchmark --train-only NAME` trains a model in a second process; the full
    run of the same YAML finds it up to date (same folder, same settings) and only
    evaluates it."""
    from gensar.benchmark import load_benchmark, run_benchmark, train_models
    from gensar.errors import ConfigError

    bench_file = _bench_file(
        tmp_path,
        tiny_dataset,
        "split-bench",
        [
            {"name": "SynerGen", "family": "synergen", "set": SYNERGEN_TINY},
            {"name": "Popularity", "family": "popularity"},
        ],
    )
    bench = load_benchmark(bench_file)
    with pytest.raises(ConfigError, match="does not list"):
        train_models(bench, ["Nope"])
    (run_dir,) = train_models(bench, ["SynerGen"], log=lambda *_: None)
    weights = run_dir / "synergen" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert not (tmp_path / "bench" / "results.md").exists()
    lines: list[str] = []
    run_benchmark(bench, log=lines.append)
    assert weights.stat().st_mtime_ns == before  # not retrained
    assert any("up to date" in line for line in lines)
    assert "SynerGen" in (tmp_path / "bench" / "results.md").read_text()


def test_train_only_of_a_budgeted_model_needs_the_first_one_trained(tiny_dataset, tmp_path):
    """Under equal_budget a later GenSAR-family model trains on what the first one saw:
    --train-only refuses it, in one line, while that first model is untrained."""
    from gensar.benchmark import load_benchmark, train_models
    from gensar.errors import ConfigError

    bench_file = _bench_file(
        tmp_path,
        tiny_dataset,
        "budget-bench",
        [
            {"name": "GenSAR", "family": "gensar"},
            {"name": "TIGER", "family": "gensar", "set": {"index.variant": "semantic"}},
        ],
    )
    with pytest.raises(ConfigError, match="GenSAR .seed 0. saw, and that model is not trained"):
        train_models(load_benchmark(bench_file), ["TIGER"], log=lambda *_: None)


def test_a_benchmark_can_rank_a_stated_subset_of_the_lists(tiny_dataset, tmp_path):
    """evaluate.candidate_lists: every model ranks the same seeded subset of lists, and
    the results header says so."""
    from gensar.benchmark import load_benchmark, run_benchmark
    from gensar.evaluation.candidates import load_candidates

    bench_file = _bench_file(
        tmp_path,
        tiny_dataset,
        "subset-bench",
        [
            {"name": "Popularity", "family": "popularity"},
            {"name": "BM25", "family": "bm25"},
        ],
        evaluate={"candidate_lists": 7},
    )
    summary = run_benchmark(load_benchmark(bench_file), log=lambda *_: None)
    text = (tmp_path / "bench" / "results.md").read_text()
    assert "fixed seeded subset of 7 test lists per task" in text
    assert "(test, 7 samples)" in text
    every = load_candidates(tmp_path / "bench", "search", "test")
    assert len(every) > 7
    chosen = every.subset(7)
    assert list(chosen.sample_ids) == sorted(chosen.sample_ids)
    assert set(chosen.sample_ids) <= set(every.sample_ids)
    assert list(every.subset(7).sample_ids) == list(chosen.sample_ids)  # seeded
    assert every.subset(None) is every and every.subset(10**6) is every
    assert summary["results"]


def test_the_full_run_waits_for_a_live_train_only_process(tmp_path, monkeypatch):
    """While a --train-only process (a live pid in the lock beside the run) builds a run,
    the full run waits; a lock of a dead process is ignored."""
    import subprocess
    import sys

    from gensar import benchmark

    run_dir = tmp_path / "seed-0" / "tiger"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        benchmark._lock_file(run_dir).parent.mkdir(parents=True)
        benchmark._lock_file(run_dir).write_text(str(sleeper.pid))
        waited: list[str] = []

        def fake_sleep(seconds: float) -> None:
            waited.append("slept")
            sleeper.kill()
            sleeper.wait()

        monkeypatch.setattr(benchmark.time, "sleep", fake_sleep)
        benchmark._wait_for_other_trainer(run_dir, waited.append)
        assert any("waiting for process" in w for w in waited) and "slept" in waited
    finally:
        sleeper.kill()
    # a dead pid: no wait at all
    with benchmark._training_lock(run_dir):
        assert benchmark._lock_file(run_dir).read_text().isdigit()
    assert not benchmark._lock_file(run_dir).exists()
    benchmark._lock_file(run_dir).write_text(str(sleeper.pid))
    benchmark._wait_for_other_trainer(run_dir, lambda *_: pytest.fail("waited on a dead pid"))
