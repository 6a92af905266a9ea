"""Shared fixtures: a small synthetic dataset built through the real `jsonl` loader,
and the location of the shared real data (tests that need it skip without it)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENSAR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests use small models: one thread is faster (no OpenMP spin-waiting on a shared
    2-core machine) and makes every result independent of the machine's core count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shared_data(*parts: str) -> Path:
    """Path under the shared real-data folder, or skip the test with a clear reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"real data not available at {path} (set GENSAR_SHARED_DATA to the shared/data folder)"
        )
    return path


def write_synthetic_jsonl(
    folder: Path,
    *,
    n_users: int = 40,
    n_items: int = 60,
    n_topics: int = 6,
    events_per_user: int = 12,
    seed: int = 0,
) -> Path:
    """A catalogue of items in a few topics and users who mostly stay on one topic.

    Every purchase is a rec click; about half are also a search session whose
    query names the item's topic, so both tasks have learnable signal.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    topics = [f"topic{t}" for t in range(n_topics)]
    words = ["red", "blue", "small", "large", "steel", "wood", "fast", "quiet", "cheap", "pro"]
    items = []
    for i in range(n_items):
        topic = topics[i % n_topics]
        title = f"{rng.choice(words)} {rng.choice(words)} {topic} item {i}"
        items.append(
            {
                "item_id": f"i{i}",
                "title": title,
                "text": f"{title}. made of {rng.choice(words)}",
                "categories": ["Shop", topic.capitalize(), f"Sub{i % 2}"],
            }
        )
    by_topic = {
        t: [it["item_id"] for it in items if it["categories"][1] == t.capitalize()] for t in topics
    }
    events = []
    for u in range(n_users):
        favourite = topics[u % n_topics]
        time = 1_000 * u
        for _ in range(events_per_user):
            topic = favourite if rng.random() < 0.8 else rng.choice(topics)
            item = rng.choice(by_topic[topic])
            time += rng.randint(1, 50)
            events.append({"user_id": f"u{u}", "time": time, "item_id": item})
            if rng.random() < 0.6:
                time += 1
                events.append(
                    {
                        "user_id": f"u{u}",
                        "time": time,
                        "query": f"{topic} {rng.choice(words)}",
                        "items": [rng.choice(by_topic[topic])],
                    }
                )
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (folder / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in events))
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A prepared dataset directory (40 users, 60 items) shared by the whole session."""
    from gensar.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("tiny")
    raw = write_synthetic_jsonl(root / "raw")
    out = root / "dataset"
    prepare_dataset("jsonl", raw, out, log=lambda *_: None)
    return out


#: Settings that run every stage on the synthetic dataset in seconds.
TINY_OVERRIDES = [
    "collab.max_epochs=3",
    "index.codebook_size=8",
    "index.epochs=30",
    "index.check_every=10",
    "tasks.vocab.size=300",
    "tasks.vocab.multiword=false",
    "tasks.max_input_tokens=64",
    "train.epochs=2",
    "train.batch_size=32",
    "train.lr=0.005",
    "train.eval_samples=20",
    "train.checkpoint_every=5",
    "train.log_every=5",
    "train.threads=1",
    "model.d_model=32",
    "model.d_ff=64",
    "model.num_heads=2",
    "model.num_layers=1",
    "model.num_decoder_layers=1",
    "evaluate.full_catalogue_samples=20",
    "candidates.n_negatives=19",
    "candidates.bm25_pool=29",
]


def tiny_run_config(dataset: Path, run_dir: Path, **overrides):
    """A RunConfig with TINY_OVERRIDES plus ``overrides`` (dotted keys)."""
    from gensar.run import load_run_config

    base = list(TINY_OVERRIDES)
    extra = [f"{k}={v}" for k, v in overrides.items()]
    return load_run_config(None, base + extra, dataset=dataset, run_dir=run_dir)


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory) -> Path:
    """A run directory with every stage built on ``tiny_dataset``: embeddings,
    identifiers, candidate lists and a trained (tiny) model in ``<run>/model``."""
    from gensar.pipeline import build_run

    run_dir = tmp_path_factory.mktemp("tiny_run")
    build_run(tiny_run_config(tiny_dataset, run_dir), log=lambda *_: None)
    return run_dir


@pytest.fixture
def toy():
    """The test-only model family (tests/toy_family.py), registered for one test."""
    import toy_family

    from gensar.families import registry

    registry.register("toy", toy_family)
    try:
        yield registry.get_family("toy")
    finally:
        registry.unregister("toy")
