"""A benchmark keeps each model's results in its run folder: an interrupted run resumes
without ranking the same lists again, processes can share one benchmark (``--only``),
and any change in what the results depend on evaluates the model again."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from test_families import _bench_file

from gensar.evaluation import result_cache
from gensar.evaluation.evaluate import EvaluationResult


@pytest.fixture
def evaluations(monkeypatch) -> list[str]:
    """The models the benchmark evaluated (ranked the lists of), in order."""
    from gensar.evaluation import runner

    calls: list[str] = []
    real = runner.evaluate_tasks

    def spy(model, *args, **kwargs):
        calls.append(model.name)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_tasks", spy)
    return calls


def _models():
    return [
        {"name": "Toy", "family": "toy", "set": {"model.smoothing": 0.5}},
        {"name": "Popularity", "family": "popularity"},
    ]


def test_results_survive_a_round_trip_and_a_damaged_file_is_a_miss(tmp_path):
    result = EvaluationResult(
        model="M",
        task="search",
        split="test",
        metrics={"NDCG@10": 0.25, "full/Recall@10": 0.5},
        sample_ids=np.array([3, 7, 9], dtype=np.int64),
        per_sample={
            "NDCG@10": np.array([0.0, 0.5, 0.25]),
            "full/Recall@10": np.array([1, np.nan, 0]),
        },
        ties="pessimistic",
    )
    path = tmp_path / "r.safetensors"
    result_cache.save_results(path, [result])
    (back,) = result_cache.load_results(path)
    assert (back.model, back.task, back.split, back.ties) == ("M", "search", "test", "pessimistic")
    assert back.metrics == result.metrics
    assert back.sample_ids.tolist() == [3, 7, 9]
    np.testing.assert_array_equal(back.per_sample["NDCG@10"], result.per_sample["NDCG@10"])
    np.testing.assert_array_equal(
        back.per_sample["full/Recall@10"], result.per_sample["full/Recall@10"]
    )
    path.write_bytes(path.read_bytes()[:20])
    assert result_cache.load_results(path) is None
    assert result_cache.load_results(tmp_path / "absent.safetensors") is None


def test_a_second_run_reuses_every_result_and_writes_the_same_table(
    toy, tiny_dataset, tmp_path, evaluations
):
    from gensar.benchmark import load_benchmark, run_benchmark

    bench_file = _bench_file(tmp_path, tiny_dataset, "resume-bench", _models())
    first = run_benchmark(load_benchmark(bench_file), log=lambda *_: None)
    assert evaluations == ["Toy", "Popularity"]
    lines: list[str] = []
    second = run_benchmark(load_benchmark(bench_file), log=lines.append)
    assert evaluations == ["Toy", "Popularity"]  # nothing ranked again
    assert sum("results reused" in line for line in lines) == 2
    assert first["results"] == second["results"]

    # another tie rule is another result: both models are evaluated again
    run_benchmark(load_benchmark(bench_file, ["base.evaluate.ties=pessimistic"]), log=print)
    assert evaluations[2:] == ["Toy", "Popularity"]
    # so is a retrained model (its stage record changes); the baseline's results stay
    stages = tmp_path / "bench" / "seed-0" / "toy" / "stages.json"
    stages.write_text(stages.read_text().replace('"finished": "', '"finished": "x'))
    run_benchmark(load_benchmark(bench_file), log=lambda *_: None)
    assert evaluations[4:] == ["Toy"]


def test_only_evaluates_the_named_models_and_the_full_run_reads_them(
    toy, tiny_dataset, tmp_path, evaluations
):
    from gensar.benchmark import load_benchmark, run_benchmark
    from gensar.errors import ConfigError

    bench = load_benchmark(_bench_file(tmp_path, tiny_dataset, "only-bench", _models()))
    with pytest.raises(ConfigError, match="--only names models the benchmark does not list"):
        run_benchmark(bench, only=["Nope"], log=lambda *_: None)
    run_benchmark(bench, only=["Toy"], log=lambda *_: None)
    assert evaluations == ["Toy"]
    assert not (tmp_path / "bench" / "results.md").exists()  # no table from a part
    summary = run_benchmark(bench, log=lambda *_: None)
    assert evaluations == ["Toy", "Popularity"]
    assert {r["model"] for r in summary["results"]} == {"Toy", "Popularity"}


def test_the_full_run_skips_ahead_of_a_model_another_process_holds(
    toy, tiny_dataset, tmp_path, evaluations, monkeypatch
):
    """A model locked by another live process goes to the end of the seed's queue (the
    other models are evaluated meanwhile); the table keeps the YAML's column order."""
    from gensar import benchmark

    bench = benchmark.load_benchmark(_bench_file(tmp_path, tiny_dataset, "defer", _models()))
    toy_dir = tmp_path / "bench" / "seed-0" / "toy"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        benchmark._lock_file(toy_dir).parent.mkdir(parents=True, exist_ok=True)
        benchmark._lock_file(toy_dir).write_text(str(other.pid))

        def other_finishes(seconds: float) -> None:
            other.kill()
            other.wait()

        monkeypatch.setattr(benchmark.time, "sleep", other_finishes)
        lines: list[str] = []
        summary = benchmark.run_benchmark(bench, log=lines.append)
    finally:
        other.kill()
    assert evaluations == ["Popularity", "Toy"]
    assert any("another process holds it" in line for line in lines)
    assert [r["model"] for r in summary["results"]][:2] == ["Toy", "Toy"]


def test_benchmark_resume_reaches_the_families_training(toy, tiny_dataset, tmp_path, monkeypatch):
    """`gensar benchmark CONFIG --resume`: an interrupted training continues from its
    checkpoint (the flag reaches the family's train, which GenSAR and SynerGen honour)."""
    from gensar import pipeline
    from gensar.cli import main

    calls: list[bool] = []
    real = pipeline.build_run

    def spy(config, **kwargs):
        calls.append(kwargs.get("resume", False))
        return real(config, **kwargs)

    monkeypatch.setattr(pipeline, "build_run", spy)
    bench_file = _bench_file(tmp_path, tiny_dataset, "resume-flag", _models())
    for extra, expected in (([], False), (["--resume"], True)):
        with pytest.raises(SystemExit) as done:
            main(["benchmark", str(bench_file), "--overwrite", *extra])
        assert done.value.code in (0, None)
        assert calls[-1] is expected


def test_skip_leaves_a_model_out_and_the_header_says_so(toy, tiny_dataset, tmp_path, evaluations):
    from gensar.benchmark import load_benchmark, run_benchmark

    bench = load_benchmark(_bench_file(tmp_path, tiny_dataset, "skip-bench", _models()))
    summary = run_benchmark(bench, skip=["Toy"], log=lambda *_: None)
    assert evaluations == ["Popularity"]
    assert {r["model"] for r in summary["results"]} == {"Popularity"}
    text = (tmp_path / "bench" / "results.md").read_text()
    assert "Not in this table: Toy (left out of this run with `--skip`)." in text
    run_benchmark(bench, log=lambda *_: None)  # Popularity's results are read back
    text = (tmp_path / "bench" / "results.md").read_text()
    assert "Popularity (seed 0): 0.0 min (its kept results read" in text


def test_train_only_with_only_or_skip_is_one_line(capsys, tmp_path):
    """Contradictory selections are refused before anything is read or written."""
    from hostile import assert_one_line_error, run_cli

    for extra in (["--only", "A"], ["--skip", "A"]):
        result = run_cli(capsys, "benchmark", tmp_path / "none.yaml", "--train-only", "A", *extra)
        assert_one_line_error(result, "does not combine")
    assert not any(tmp_path.iterdir())


def test_a_bad_model_setting_fails_before_the_dataset_is_prepared(capsys, tmp_path):
    """Every model's settings are validated first: nothing prepared, nothing built."""
    import yaml
    from hostile import assert_one_line_error, run_cli

    from conftest import write_synthetic_jsonl

    raw = write_synthetic_jsonl(tmp_path / "raw")
    prepared = tmp_path / "prepared"
    config = {
        "name": "bad-set",
        "dataset": {"prepared": str(prepared), "source": "jsonl", "path": str(raw)},
        "out": str(tmp_path / "bench"),
        "models": [
            {"name": "Popularity", "family": "popularity"},
            {"name": "GenSAR", "family": "gensar", "set": {"train.bucket_by": "sideways"}},
        ],
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    assert_one_line_error(run_cli(capsys, "benchmark", path), "bucket_by")
    assert not prepared.exists()
    assert not (tmp_path / "bench").exists()
