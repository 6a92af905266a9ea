"""The model stage end to end at tiny scale: API, resume after a kill, backbones, ablations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gensar.data import load_dataset, schema
from gensar.errors import GensarError
from gensar.families.gensar.api import GenSAR
from gensar.pipeline import build_run

from conftest import REPO, TINY_OVERRIDES, tiny_run_config


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models run faster and deterministically on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_api_returns_valid_distinct_items(tiny_run, tiny_dataset):
    model = GenSAR.load(tiny_run / "model")
    ds = load_dataset(tiny_dataset)
    history = [
        {"behaviour": schema.REC_ITEM, "item_id": ds.item_ids[0]},
        {"behaviour": schema.SEARCH_QUERY, "query": "topic1 red"},
        {"behaviour": schema.SEARCH_ITEM, "item_id": ds.item_ids[1]},
    ]
    for ranked in (model.recommend(history, k=10), model.search(history, "topic2 blue", k=10)):
        items = [p.item_id for p in ranked]
        assert len(items) == 10 and len(set(items)) == 10
        assert set(items) <= set(ds.item_ids)
        scores = [p.score for p in ranked]
        assert scores == sorted(scores, reverse=True)
        assert all(p.title for p in ranked)
    suggestions = model.suggest_queries(history, k=3)
    assert 1 <= len(suggestions) <= 3 and all(s.query for s in suggestions)
    # an unknown item in a history is ignored, a malformed entry is a clear error
    assert len(model.recommend([{"behaviour": schema.REC_ITEM, "item_id": "nope"}], k=5)) == 5
    with pytest.raises(GensarError, match="unknown behaviour"):
        model.recommend([{"behaviour": "buy", "item_id": "i1"}])
    with pytest.raises(GensarError, match="query is empty"):
        model.search(history, "  ")


def test_candidate_scores_match_beam_search(tiny_run):
    """Exact scoring and beam search agree on the best item of the whole catalogue."""
    model = GenSAR.load(tiny_run / "model")
    instructions = model.instructions("nrip", [[]])
    top = model.top_k("nrip", instructions, k=5, num_beams=len(model.item_ids))
    scores = model.score_candidates("nrip", instructions, [list(range(len(model.item_ids)))])[0]
    best = sorted(range(len(scores)), key=lambda i: -scores[i])[:5]
    assert [i for i, _ in top[0]] == best
    assert abs(top[0][0][1] - scores[best[0]]) < 1e-4


def test_beam_ranking_of_candidates_keeps_exact_scores(tiny_run):
    """Mode (b) returns the num_beams best candidates with their exact log-likelihoods."""
    model = GenSAR.load(tiny_run / "model")
    instructions = model.instructions("nrip", [[], []])
    lists = [list(range(len(model.item_ids)))[::-1], list(range(0, len(model.item_ids), 2))]
    exact = model.score_candidates("nrip", instructions, lists)
    beam = model.score_candidates("nrip", instructions, lists, mode="beam", num_beams=3)
    for row in range(2):
        found = np.isfinite(beam[row])
        assert found.sum() == 3
        np.testing.assert_allclose(beam[row][found], exact[row][found], atol=1e-4)
    wide = model.score_candidates("nrip", instructions, lists, mode="beam", num_beams=len(lists[0]))
    np.testing.assert_allclose(wide[0], exact[0], atol=1e-4)
    with pytest.raises(GensarError, match="scoring mode"):
        model.score_candidates("nrip", instructions, lists, mode="greedy")


def copy_built_stages(source: Path, run: Path) -> None:
    """Reuse the tiny run's embeddings, identifiers and candidates (their fingerprints too)."""
    import shutil

    for part in ("embeddings", "identifiers", "candidates"):
        shutil.copytree(source / part, run / part)
    shutil.copy(source / "stages.json", run / "stages.json")


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_resume_after_kill_gives_the_same_model(tiny_dataset, tiny_run, tmp_path):
    """Kill `gensar train` (SIGKILL) after its first checkpoint, resume, compare with an uninterrupted run."""
    import shutil

    overrides = {"train.threads": 1, "train.checkpoint_every": 3, "train.epochs": 2}
    straight = tmp_path / "straight"
    killed = tmp_path / "killed"
    for run in (straight, killed):
        run.mkdir()
        shutil.copytree(tiny_run / "identifiers", run / "identifiers")
        shutil.copytree(tiny_run / "candidates", run / "candidates")
    config = tiny_run_config(tiny_dataset, straight, **overrides)
    from gensar.families.gensar import gensar_config
    from gensar.families.gensar.stage import train_gensar

    train_gensar(
        tiny_dataset,
        straight,
        gensar_config(config),
        log=lambda *_: None,
        progress=False,
    )

    args = [
        f"--set={k}={v}"
        for k, v in {**dict(s.split("=", 1) for s in TINY_OVERRIDES), **overrides}.items()
    ]
    cmd = [
        sys.executable,
        "-m",
        "gensar.cli",
        "train",
        str(tiny_dataset),
        "--run",
        str(killed),
        *args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoints = killed / "training" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.startswith("step-") for p in checkpoints.glob("step-*")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "model").exists()
    done = subprocess.run(
        [*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from step-" in done.stdout + done.stderr
    a, b = _weights(straight / "model"), _weights(killed / "model")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), (
        "resumed training diverged from the uninterrupted run"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"tasks.behaviour_tokens": False},
        {"tasks.compact": False, "tasks.max_input_tokens": 160},
        {"tasks.counts.nsip": 0, "tasks.counts.nsqp": 0, "name": "GenSAR-rec"},
    ],
)
def test_variants_train_and_rank(tiny_dataset, tiny_run, tmp_path, overrides):

    run = tmp_path / "run"
    run.mkdir()
    copy_built_stages(tiny_run, run)
    config = tiny_run_config(tiny_dataset, run, **{"train.epochs": 1, **overrides})
    build_run(config, log=lambda *_: None)
    model = GenSAR.load(run / "model")
    ranked = model.recommend([], k=5)
    assert len({p.item_id for p in ranked}) == 5
    if overrides.get("tasks.counts.nsip") == 0:
        from gensar.families.gensar.ranking import GenSARRanker

        assert GenSARRanker(gensar=model).tasks == (schema.RECOMMENDATION,)


def test_pretrained_checkpoint_is_extended(tiny_dataset, tiny_run, tmp_path):
    """preset=pretrained: a local T5 checkpoint (saved here) gets the new tokens added."""
    from collections import Counter

    from transformers import T5Config, T5ForConditionalGeneration

    from gensar.tasks.vocab import VocabConfig, build_tokenizer

    checkpoint = tmp_path / "pretrained"
    tokenizer = build_tokenizer(
        ["a small pretrained vocabulary of words"] * 5,
        Counter(),
        [],
        VocabConfig(size=100, multiword=False),
    )
    t5 = T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=2,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    t5.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    before = len(tokenizer)

    run = tmp_path / "run"
    run.mkdir()
    copy_built_stages(tiny_run, run)
    config = tiny_run_config(
        tiny_dataset,
        run,
        **{
            "model.preset": "pretrained",
            "model.pretrained_path": str(checkpoint),
            "train.epochs": 1,
        },
    )
    build_run(config, log=lambda *_: None)
    model = GenSAR.load(run / "model")
    assert len(model.tokenizer) > before
    assert model.model.config.vocab_size >= len(model.tokenizer)
    assert len(model.recommend([], k=3)) == 3


def test_minilm_warm_start(tiny_dataset, tiny_run, tmp_path):
    """preset=minilm: the pretrained all-MiniLM-L6-v2 encoder with a new small decoder."""

    from transformers import EncoderDecoderModel

    run = tmp_path / "run"
    run.mkdir()
    copy_built_stages(tiny_run, run)
    config = tiny_run_config(
        tiny_dataset,
        run,
        **{
            "model.preset": "minilm",
            "model.decoder_layers_minilm": 1,
            "train.epochs": 1,
            "model.freeze_encoder_layers": 5,
        },
    )
    build_run(config, log=lambda *_: None)
    model = GenSAR.load(run / "model")
    assert isinstance(model.model, EncoderDecoderModel)
    assert len({p.item_id for p in model.search([], "topic1", k=4)}) == 4
