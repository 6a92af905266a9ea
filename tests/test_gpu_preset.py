"""The GPU preset (benchmarks/amazon-scientific-gpu.yaml) runs: its GenSAR row, with every
setting of the preset (the t5-small shape, compact tasks, batch/lr/warm-up, validation
every N examples by exact scoring, beam 30 with exact beside it), trained for a few
steps on the CPU over the tiny dataset and evaluated through the benchmark."""

from __future__ import annotations

from pathlib import Path

GPU_YAML = Path(__file__).resolve().parents[1] / "benchmarks" / "amazon-scientific-gpu.yaml"

#: Only what a CPU test needs changed: data, output, and the sizes of a few steps.
SMOKE = [
    "base.index.epochs=3",
    "base.index.codebook_size=8",
    "base.index.check_every=1",
    "base.collab.max_epochs=2",
    "base.candidates.n_negatives=19",
    "base.candidates.bm25_pool=29",
    "base.tasks.vocab.size=300",
    "base.tasks.vocab.multiword=false",
    "base.train.examples=48",
    "base.train.batch_size=8",
    "base.train.eval_every=24",
    "base.train.eval_samples=4",
    "base.train.threads=1",
    "base.evaluate.full_catalogue_samples=4",
]


def test_the_gpu_preset_reads_as_documented():
    from gensar.benchmark import load_benchmark, run_config_for

    bench = load_benchmark(GPU_YAML)
    gensar = next(m for m in bench.models if m.name == "GenSAR")
    config = run_config_for(bench, gensar, 0, Path("/nonexistent/run"))
    model = config.model
    assert model.backbone.preset == "small" and model.backbone.dropout == 0.1
    assert model.tasks.compact is True
    assert (model.train.batch_size, model.train.lr, model.train.epochs) == (512, 1e-3, 200)
    assert model.train.precision == "auto" and model.train.eval_ranking == "exact"
    assert model.train.eval_every and model.train.warmup_ratio > 0
    assert model.num_beams == 30 and gensar.exact_too
    assert config.evaluate.candidate_lists is None  # every list
    names = {m.name for m in bench.models}
    assert {"GenSR", "SynerGen", "SASRec", "BM25", "TIGER"} <= names


def test_the_gpu_preset_trains_and_evaluates_a_few_steps_on_the_cpu(tiny_dataset, tmp_path):
    from gensar.benchmark import load_benchmark, run_benchmark

    out = tmp_path / "gpu"
    bench = load_benchmark(
        GPU_YAML, [f"dataset.prepared={tiny_dataset}", f"out={out}", "publish=null", *SMOKE]
    )
    run_benchmark(bench, only=["GenSAR"], log=lambda *_: None)
    run = out / "seed-0" / "gensar"
    card = __import__("json").loads((run / "model" / "gensar.json").read_text())
    assert card["training"]["examples_seen"] == 48
    assert [h["step"] for h in card["validation_history"]] == [3, 6]  # every 24 examples
    assert card["model"]["preset"] == "small"
    cached = list((run / "benchmark-results").glob("*.safetensors"))
    assert len(cached) == 1  # its results, beam 30 and exact, kept for the full run
