"""Baselines through the shared evaluation protocol, on the tiny synthetic dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import bm25s
import numpy as np
import pytest

from gensar.baselines import BM25Search, DenseRetrieval, Popularity, SASRecBaseline
from gensar.data.dataset import Dataset, load_dataset
from gensar.embed.store import ItemEmbeddings
from gensar.evaluation import CandidateConfig, build_candidates, evaluate_model, load_candidates

SMALL = CandidateConfig(n_negatives=20, bm25_pool=25)


@pytest.fixture(scope="module")
def setup(tiny_dataset, tmp_path_factory) -> tuple[Dataset, Path]:
    run = tmp_path_factory.mktemp("baselines")
    build_candidates(tiny_dataset, run, SMALL)
    return load_dataset(tiny_dataset), run


def hashed_bag_of_words(texts, dim: int = 64) -> np.ndarray:
    """A deterministic stand-in encoder: each word adds a fixed random vector."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().replace(".", " ").split():
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
            out[row] += np.random.default_rng(seed).normal(size=dim)
    return out


def assert_candidate_scores_match_catalogue_scores(model, dataset, cands) -> None:
    samples = cands.samples(dataset)
    per_list = model.score_candidates(samples, cands.candidates)
    full = model.score_all(samples)
    rows = cands.item_indices(dataset.item_index)
    assert per_list.shape == rows.shape
    np.testing.assert_allclose(per_list, np.take_along_axis(full, rows, axis=1), rtol=1e-5)


def test_bm25_scores_are_bm25s_lucene_scores_of_the_query(setup):
    dataset, run = setup
    model = BM25Search()
    model.fit(dataset)
    cands = load_candidates(run, "search", "test")
    samples = cands.samples(dataset)
    reference = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    reference.index(
        bm25s.tokenize(dataset.items["text"].to_list(), stopwords="en", show_progress=False),
        show_progress=False,
    )
    full = model.score_all(samples[:5])
    for row, query_id in enumerate(samples["query_id"][:5]):
        tokens = bm25s.tokenize([dataset.query_text[query_id]], stopwords="en", return_ids=False)
        np.testing.assert_allclose(full[row], reference.get_scores(tokens[0]), rtol=1e-6)
    assert_candidate_scores_match_catalogue_scores(model, dataset, cands)


def test_popularity_counts_only_the_clicks_a_model_may_train_on(setup):
    dataset, run = setup
    model = Popularity()
    model.fit(dataset)
    sequences = dataset.rec_training_sequences()
    assert model.counts.sum() == sum(len(s) for s in sequences.values())
    all_rec = dataset.events.filter(dataset.events["behaviour"] == "rec_item").height
    assert model.counts.sum() < all_rec  # held-out targets are not counted
    cands = load_candidates(run, "recommendation", "test")
    assert_candidate_scores_match_catalogue_scores(model, dataset, cands)


def test_dense_retrieval_is_cosine_of_encoded_query_and_item_text(setup):
    dataset, run = setup
    model = DenseRetrieval(encoder=hashed_bag_of_words)
    model.fit(dataset)
    cands = load_candidates(run, "search", "test")
    samples = cands.samples(dataset)[:3]
    items = hashed_bag_of_words(dataset.items["text"].to_list())
    queries = hashed_bag_of_words([dataset.query_text[q] for q in samples["query_id"]])
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        items / np.linalg.norm(items, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(model.score_all(samples), expected, rtol=1e-5, atol=1e-6)
    assert_candidate_scores_match_catalogue_scores(model, dataset, cands)


def test_dense_retrieval_reads_the_runs_semantic_embeddings_when_present(setup, tmp_path):
    dataset, _ = setup
    vectors = hashed_bag_of_words(dataset.items["text"].to_list())
    order = np.random.default_rng(0).permutation(len(dataset.item_ids))  # stored in another order
    ItemEmbeddings([dataset.item_ids[i] for i in order], vectors[order]).save(
        tmp_path / "embeddings" / "semantic.safetensors"
    )
    calls: list[int] = []

    def encoder(texts):
        calls.append(len(texts))
        return hashed_bag_of_words(texts)

    from_file = DenseRetrieval(encoder=encoder)
    from_file.fit(dataset, tmp_path)
    assert calls == []  # items came from the file, not the encoder
    assert from_file.provenance["items"].endswith("semantic.safetensors")
    encoded = DenseRetrieval(encoder=hashed_bag_of_words)
    encoded.fit(dataset)
    np.testing.assert_allclose(from_file.items, encoded.items, rtol=1e-6)


@pytest.mark.slow
def test_dense_retrieval_with_the_packaged_minilm_finds_topic_items(setup):
    """The real encoder (all-MiniLM-L6-v2, offline): better than popularity on search."""
    dataset, run = setup
    cands = load_candidates(run, "search", "test")
    dense = DenseRetrieval()
    dense.fit(dataset)
    assert dense.items.shape == (len(dataset.item_ids), 384)
    popularity = Popularity()
    popularity.fit(dataset)
    got = evaluate_model(dense, dataset, cands).metrics
    floor = evaluate_model(popularity, dataset, cands).metrics
    assert got["full/NDCG@10"] > floor["full/NDCG@10"]


def test_evaluate_model_gives_both_metric_forms_and_bm25_beats_popularity(setup):
    dataset, run = setup
    cands = load_candidates(run, "search", "test")
    bm25, popularity = BM25Search(), Popularity()
    bm25.fit(dataset)
    popularity.fit(dataset)
    lexical = evaluate_model(bm25, dataset, cands, batch_size=7)
    floor = evaluate_model(popularity, dataset, cands, batch_size=7)
    assert set(lexical.metrics) >= {"HR@1", "NDCG@10", "full/Recall@20", "full/NDCG@20"}
    assert lexical.per_sample["NDCG@10"].shape == (len(cands),)
    # Same lists, same batches or not: identical to scoring everything at once.
    whole = evaluate_model(bm25, dataset, cands, batch_size=10_000)
    assert whole.metrics == lexical.metrics
    assert lexical.metrics["full/NDCG@10"] > floor.metrics["full/NDCG@10"]


class CandidatesOnly:
    name = "no-catalogue"
    tasks = ("recommendation",)

    def fit(self, dataset, run_dir=None):
        pass

    def score_candidates(self, samples, candidates):
        return np.zeros((len(candidates), len(candidates[0])))

    def score_all(self, samples):
        raise NotImplementedError


def test_models_without_catalogue_scores_or_for_another_task(setup):
    dataset, run = setup
    rec = load_candidates(run, "recommendation", "test")
    result = evaluate_model(CandidatesOnly(), dataset, rec)
    assert not any(name.startswith("full/") for name in result.metrics)
    width = len(rec.candidates[0])  # all ties: chance level under expected ties
    assert result.metrics["HR@10"] == pytest.approx(min(10, width) / width)
    with pytest.raises(ValueError, match="does not rank"):
        evaluate_model(CandidatesOnly(), dataset, load_candidates(run, "search", "test"))


class FakeSASRec:
    """Records the histories it gets; scores = position of the item in a reversed catalogue."""

    def __init__(self, item_ids):
        self.item_ids = list(reversed(item_ids))
        self.histories = None

    def score_candidates(self, histories, candidates):
        self.histories = histories
        order = {item: i for i, item in enumerate(self.item_ids)}
        return np.array([[order[c] for c in row] for row in candidates], dtype=np.float32)

    def score_all(self, histories):
        return np.tile(np.arange(len(self.item_ids), dtype=np.float32), (len(histories), 1))


def test_sasrec_adapter_feeds_earlier_rec_clicks_and_aligns_item_order(setup):
    dataset, run = setup
    fake = FakeSASRec(dataset.item_ids)
    adapter = SASRecBaseline(fake)
    adapter.fit(dataset)
    cands = load_candidates(run, "recommendation", "test")
    samples = cands.samples(dataset)
    adapter.score_candidates(samples, cands.candidates)
    assert fake.histories == dataset.rec_histories(samples)
    assert_candidate_scores_match_catalogue_scores(adapter, dataset, cands)


def test_sasrec_adapter_loads_lazily_through_its_loader(setup):
    dataset, _ = setup
    seen = []
    adapter = SASRecBaseline(loader=lambda ds, run_dir: seen.append(run_dir) or "model")
    adapter.fit(dataset, Path("/some/run"))
    assert seen == [Path("/some/run")] and adapter.recommender == "model"
