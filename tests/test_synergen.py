"""SynerGen: time-aware rotary positions, causal masking, loss terms, exact top-k,
leak-free streams, and a tiny end-to-end train + score on the synthetic dataset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import gensar.families.synergen as family
from gensar.data.dataset import load_dataset
from gensar.families.protocols import HistoryEntry, Servable, Unsupported
from gensar.families.synergen import SynerGenConfig, SynerGenRanker, load, load_model, train
from gensar.families.synergen import data as D
from gensar.families.synergen.losses import bpr_loss, infonce_loss, pointwise_loss
from gensar.families.synergen.model import SynerGen
from gensar.families.synergen.ranker import retrieve_top_k
from gensar.families.synergen.rotary import apply_rotary, rotary_angles

# ----------------------------------------------------------------------------- rotary


def test_time_aware_rotation_matches_hand_computation():
    # head_dim 4: pairs (x0, x2) and (x1, x3); time_fraction 0.5 gives one pair to the
    # position and one to the time, each with frequency base^0 = 1.
    times = np.array([100, 107])  # two events 7 s apart
    tau = torch.from_numpy(D.log_time(times, unit=1.0))
    assert tau.tolist() == pytest.approx([0.0, math.log(8.0)])
    angles = rotary_angles(torch.arange(2), tau, 4, time_fraction=0.5, base=10000.0)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.25]])
    y = apply_rotary(x[None, None], angles)[0, 0]
    for event, (pos, t) in enumerate([(0.0, 0.0), (1.0, math.log(8.0))]):
        x0, x1, x2, x3 = x[event].tolist()
        expected = [
            x0 * math.cos(pos) - x2 * math.sin(pos),
            x1 * math.cos(t) - x3 * math.sin(t),
            x0 * math.sin(pos) + x2 * math.cos(pos),
            x1 * math.sin(t) + x3 * math.cos(t),
        ]
        assert y[event].tolist() == pytest.approx(expected, abs=1e-6)
    # the attention logit of event 1's query and event 0's key depends on the
    # position difference (1) and the log-time difference (log 8) only
    q, k = torch.tensor([0.3, -0.7, 1.1, 0.2]), torch.tensor([-0.4, 0.9, 0.6, 1.5])
    rq = apply_rotary(q[None, None, None], angles[1:2])[0, 0, 0]
    rk = apply_rotary(k[None, None, None], angles[0:1])[0, 0, 0]
    delta = torch.tensor([[1.0, math.log(8.0)]])
    relative = apply_rotary(q[None, None, None], delta)[0, 0, 0]
    assert float(rq @ rk) == pytest.approx(float(relative @ k), abs=1e-6)


def test_plain_rope_ignores_time_and_time_fraction_splits_pairs():
    pos = torch.arange(3)
    plain = rotary_angles(pos, None, 8, time_fraction=0.5, base=100.0)
    assert plain[2].tolist() == pytest.approx([2.0, 2.0 * 100**-0.25, 0.2, 2.0 * 100**-0.75])
    timed = rotary_angles(pos, torch.tensor([0.0, 1.0, 3.0]), 8, time_fraction=0.5, base=100.0)
    assert timed[2].tolist() == pytest.approx([2.0, 0.2, 3.0, 0.3])


# ----------------------------------------------------------------------------- causality


def _tiny_model(**overrides) -> SynerGen:
    torch.manual_seed(0)
    config = SynerGenConfig(hidden=16, heads=2, layers=2, max_len=16, **overrides)
    return SynerGen(config, torch.randn(10, 8), torch.randn(4, 8)).eval()


@pytest.mark.parametrize("positions", ["time", "rope", "learned"])
def test_a_later_event_never_changes_earlier_states(positions):
    model = _tiny_model(positions=positions)
    kinds, ids, times = [1, 2, 1, 0, 2, 1], [3, 1, 4, 5, 2, 9], [10, 11, 11, 50, 60, 60]
    base = D.pad_batch([(np.array(kinds), np.array(ids), np.array(times))], 1.0)
    changed = D.pad_batch(
        [
            (
                np.array(kinds[:4] + [0, 0]),
                np.array(ids[:4] + [7, 8]),
                np.array(times[:4] + [999, 5000]),
            )
        ],
        1.0,
    )
    with torch.no_grad():
        a, b = model(base)[0], model(changed)[0]
    assert torch.allclose(a[:4], b[:4], atol=1e-6)
    assert not torch.allclose(a[4:], b[4:])


def _both_behaviours_dataset(tmp_path):
    """Amazon-like: every purchase is a rec click and a search session at the same time."""
    from gensar.data.prepare import prepare_dataset

    raw = tmp_path / "raw"
    raw.mkdir()
    items = [{"item_id": f"i{i}", "title": f"thing {i % 3} number {i}"} for i in range(12)]
    events = []
    rng = np.random.default_rng(0)
    for u in range(6):
        for step in range(7):
            item = f"i{int(rng.integers(12))}"
            t = 100 * step + u
            events.append({"user_id": f"u{u}", "time": t, "item_id": item})
            events.append(
                {"user_id": f"u{u}", "time": t, "query": f"thing {item}", "items": [item]}
            )
    (raw / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (raw / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in events))
    prepare_dataset("jsonl", raw, tmp_path / "ds", log=lambda *_: None)
    return load_dataset(tmp_path / "ds")


def test_no_target_is_in_its_own_input(tmp_path):
    dataset = _both_behaviours_dataset(tmp_path)
    streams = D.build_streams(dataset)
    checked = 0
    for stream in streams.values():
        for ctx, item, task, time in stream.targets:
            seen = slice(0, ctx + 1)
            same_time_item = (
                (stream.times[seen] == time)
                & (stream.ids[seen] == item)
                & (stream.kinds[seen] != D.QUERY)
            )
            assert not same_time_item.any(), "a target's own click is in its input"
            assert (stream.times[seen] <= time).all()
            if task == D.TASK_REC:  # its search session (same time) comes after it
                assert not ((stream.times[seen] == time) & (stream.kinds[seen] == D.QUERY)).any()
            else:
                assert stream.kinds[ctx] == D.QUERY
            checked += 1
    assert checked > 50
    # without the merge the search target's own rec click would be its input
    raw = D.build_streams(dataset, merge_duplicate_clicks=False)
    leaks = sum(
        bool(((s.times[: c + 1] == t) & (s.ids[: c + 1] == i) & (s.kinds[: c + 1] == D.REC)).any())
        for s in raw.values()
        for c, i, task, t in s.targets
        if task == D.TASK_SEARCH
    )
    assert leaks > 0


def test_training_windows_hold_nothing_from_held_out_targets(tmp_path):
    dataset = _both_behaviours_dataset(tmp_path)
    streams = D.build_streams(dataset)
    cutoffs = D.heldout_cutoffs(dataset)
    windows = D.training_windows(streams, cutoffs, max_len=5)
    held = dataset.samples.filter(dataset.samples["split"] != "train")
    assert held.height > 0 and windows
    by_user = {}
    for user, stream in streams.items():
        by_user[user] = stream
    for window in windows:
        owner = [
            u
            for u, s in by_user.items()
            if any(
                np.array_equal(s.ids[i : i + len(window)], window.ids)
                and np.array_equal(s.times[i : i + len(window)], window.times)
                for i in range(len(s.ids))
            )
        ]
        assert owner
        assert (window.times < cutoffs[owner[0]]).all()
        assert len(window) <= 5 and (window.ctx < len(window)).all()


# ----------------------------------------------------------------------------- losses


def test_infonce_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    items = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.5], [2.0, 0.0]])
    targets, sampled = torch.tensor([0, 1]), torch.tensor([2, 0])
    s = (q @ items.T).tolist()
    # row 0: columns [0, 1, 2, 0]; the second 0 is its own positive again -> masked
    l0 = -math.log(math.exp(s[0][0]) / sum(math.exp(s[0][c]) for c in (0, 1, 2)))
    # row 1: columns [0, 1, 2, 0]; item 0 is a real negative, twice (in-batch + sampled)
    l1 = -math.log(math.exp(s[1][1]) / sum(math.exp(s[1][c]) for c in (0, 1, 2, 0)))
    assert infonce_loss(q, items, targets, sampled).tolist() == pytest.approx([l0, l1], rel=1e-5)


def test_bpr_and_pointwise_match_hand_computation():
    pos, neg = torch.tensor([1.0]), torch.tensor([[0.5, 2.0]])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731 - softplus
    assert bpr_loss(pos, neg).item() == pytest.approx((sp(-0.5) + sp(1.0)) / 2, rel=1e-6)
    assert pointwise_loss(pos, neg).item() == pytest.approx(
        (sp(-1.0) + sp(0.5) + sp(2.0)) / 3, rel=1e-6
    )


def test_retrieval_top_k_equals_brute_force_sort():
    scores = torch.randn(7, 300, generator=torch.Generator().manual_seed(3))
    top = retrieve_top_k(scores, 20).numpy()
    brute = np.argsort(-scores.numpy(), axis=1, kind="stable")[:, :20]
    assert np.array_equal(top, brute)


# ----------------------------------------------------------------------------- end to end

TINY = {
    "hidden": 16,
    "heads": 2,
    "layers": 1,
    "max_len": 16,
    "batch_size": 16,
    "eval_samples": 20,
    "epochs": 2,
    "rank_hard_negatives": 3,
    "rank_random_negatives": 3,
    "hard_pool": 10,
}


def test_train_score_and_resume(tiny_dataset, tmp_path):
    from gensar.evaluation.candidates import CandidateConfig, build_candidates, load_candidates
    from gensar.evaluation.protocol import evaluate_model

    summary = train(
        tiny_dataset, tmp_path / "a", SynerGenConfig(**TINY), progress=False, log=lambda *_: None
    )
    assert summary["examples_seen"] == 2 * summary["targets_per_epoch"] > 0
    rows = [
        json.loads(x) for x in (tmp_path / "a/synergen/metrics.jsonl").read_text().split("\n") if x
    ]
    assert [r["epoch"] for r in rows] == [1, 2] and "search_ndcg10" in rows[0]

    dataset = load_dataset(tiny_dataset)
    ranker = SynerGenRanker()
    ranker.fit(dataset, tmp_path / "a")
    build_candidates(tiny_dataset, tmp_path / "a", CandidateConfig(n_negatives=19, bm25_pool=29))
    for task in ("recommendation", "search"):
        cands = load_candidates(tmp_path / "a", task, "test")
        result = evaluate_model(ranker, dataset, cands)
        assert 0.0 <= result.metrics["NDCG@10"] <= 1.0
        assert "full/Recall@10" in result.metrics
        samples = cands.samples(dataset)
        full = ranker.score_all(samples)
        assert full.shape == (len(cands), len(dataset.item_ids)) and np.isfinite(full).all()
        top = ranker.top_k(samples, 5)
        best = np.argsort(-full, axis=1, kind="stable")[:, :5]
        assert top == [[dataset.item_ids[i] for i in row] for row in best]

    # an interrupted run resumed from its epoch-1 checkpoint ends with the same weights
    one = SynerGenConfig(**{**TINY, "epochs": 1})
    train(tiny_dataset, tmp_path / "b", one, progress=False, log=lambda *_: None)
    train(
        tiny_dataset,
        tmp_path / "b",
        SynerGenConfig(**TINY),
        resume=True,
        progress=False,
        log=lambda *_: None,
    )
    a = load_file(str(tmp_path / "a/synergen/model.safetensors"))
    b = load_file(str(tmp_path / "b/synergen/model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_model(tmp_path / "b/synergen").summary["epochs_run"] == 2


def test_bad_settings_and_folders_give_clear_errors(tmp_path):
    from pydantic import ValidationError

    from gensar.errors import GensarError

    with pytest.raises(ValidationError, match="whole even number"):
        SynerGenConfig(hidden=24, heads=8)  # head width 3: rotary needs pairs
    with pytest.raises(ValidationError, match="cannot both be 0"):
        SynerGenConfig(rec_weight=0, search_weight=0)
    with pytest.raises(GensarError, match="not a trained SynerGen folder"):
        load(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "other", "format_version": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(GensarError, match="unsupported format"):
        load(tmp_path)


@pytest.mark.parametrize(
    "overrides",
    [
        {"retrieval_loss": "infonce", "infonce_negatives": 16, "infonce_sampling": "popularity"},
        {"ranking_weight": 0.0, "positions": "rope"},
        {"retrieval_weight": 0.0, "ranking_head": "bilinear", "positions": "learned"},
        {"rec_weight": 0.0},
        {"search_weight": 0.0, "share_text_projection": False},
    ],
    ids=["infonce", "retrieval-only", "ranking-only", "search-only", "rec-only"],
)
def test_every_ablation_trains_and_scores(tiny_dataset, tmp_path, overrides):
    """Each ablation is one override (without the MiniLM vectors, to stay fast)."""
    config = SynerGenConfig(**{**TINY, "epochs": 1, "semantic": False, **overrides})
    summary = train(tiny_dataset, tmp_path, config, progress=False, log=lambda *_: None)
    assert summary["examples_seen"] > 0
    dataset = load_dataset(tiny_dataset)
    ranker = SynerGenRanker(model_dir=tmp_path / "synergen")
    ranker.fit(dataset)
    samples = dataset.samples_for("search", "test")
    lists = [dataset.item_ids[:5]] * samples.height
    scores = ranker.score_candidates(samples, lists)
    assert scores.shape == (samples.height, 5) and np.isfinite(scores).all()


# ----------------------------------------------------------------------------- family surface


def _history(dataset, user: str, before_event: int) -> list[HistoryEntry]:
    """The user's events before ``before_event`` as served history entries (with times)."""
    events = dataset.events.filter(
        (dataset.events["user_id"] == user) & (dataset.events["event_id"] < before_event)
    ).sort("event_id")
    text = dataset.query_text
    return [
        HistoryEntry(b, i, text[q] if q is not None else None, t)
        for b, i, q, t in events.select("behaviour", "item_id", "query_id", "time").iter_rows()
    ]


def test_family_module_surface_and_servable_matches_the_evaluation(tiny_dataset, tmp_path):
    assert family.NAME == "synergen" and family.Config is SynerGenConfig
    assert SynerGenConfig().family == "synergen"
    config = SynerGenConfig(**{**TINY, "epochs": 1})
    family.train(tiny_dataset, tmp_path, config)
    dataset = load_dataset(tiny_dataset)
    ranker = family.ranker(tmp_path, config, "SynerGen-x")
    assert ranker.name == "SynerGen-x"
    ranker.fit(dataset)
    served = family.load(tmp_path / "synergen")
    assert isinstance(served, Servable)
    assert served.item_ids == dataset.item_ids
    first = dataset.item_ids[0]
    assert served.title(first) == dataset.items["title"][0] and served.title("nope") is None
    with pytest.raises(Unsupported):
        served.suggest_queries_batch([[]], 3)

    # the popularity correction subtracts a * log(1 + training targets) on its task only
    streams = D.build_streams(dataset)
    windows = D.training_windows(streams, D.heldout_cutoffs(dataset), config.max_len)
    counts = np.zeros(len(dataset.item_ids))
    for window in windows:
        for item in window.items:
            counts[item] += 1
    lists = [dataset.item_ids[:5]] * 3
    for task in ("recommendation", "search"):
        samples = dataset.samples_for(task, "test").head(3)
        plain = SynerGenRanker(model_dir=tmp_path / "synergen", candidate_scorer="retrieval")
        plain.fit(dataset)
        fixed = SynerGenRanker(
            model_dir=tmp_path / "synergen",
            candidate_scorer="retrieval",
            popularity_correction={"recommendation": 0.7},
        )
        fixed.fit(dataset)
        a = 0.7 if task == "recommendation" else 0.0
        expected = plain.score_candidates(samples, lists) - a * np.log1p(counts[:5])[None]
        assert fixed.score_candidates(samples, lists) == pytest.approx(expected, abs=1e-5)
    assert counts.sum() > 0

    # serving a sample's history gives the evaluation's retrieval scores for that sample
    events = dataset.events
    for task in ("recommendation", "search"):
        samples = dataset.samples_for(task, "test").head(6)
        full = ranker.score_all(samples)
        for n, (user, event) in enumerate(samples.select("user_id", "target_event_id").iter_rows()):
            if task == "search":  # the history ends before the session's query event
                row = events.filter(events["event_id"] == event)
                query_row = events.filter(
                    (events["session_id"] == row["session_id"][0])
                    & (events["behaviour"] == "search_query")
                )
                history = _history(dataset, user, query_row["event_id"][0])
                query = dataset.query_text[query_row["query_id"][0]]
                answer = served.search(history, query, k=7, query_time=query_row["time"][0])
            else:
                answer = served.recommend(_history(dataset, user, event), k=7)
            expected = np.sort(full[n])[::-1][:7]
            got = np.array([p.score for p in answer])
            assert got == pytest.approx(expected, abs=1e-4)
            rows = [dataset.item_index[p.item_id] for p in answer]
            assert full[n][rows] == pytest.approx(got, abs=1e-4)


def test_served_answers_do_not_depend_on_the_batch(tiny_dataset, tmp_path):
    config = SynerGenConfig(**{**TINY, "epochs": 1, "semantic": False})
    train(tiny_dataset, tmp_path, config, progress=False, log=lambda *_: None)
    served = load(tmp_path / "synergen")
    ids = served.item_ids
    short = [HistoryEntry("rec_item", ids[3])]
    long = [
        {"behaviour": "rec_item", "item_id": ids[i % len(ids)], "time": 10 * i} for i in range(30)
    ]
    mixed = [
        HistoryEntry("search_query", None, "some words", 5),
        HistoryEntry("search_item", ids[1], None, 5),
        HistoryEntry("rec_item", "not-an-item", None, 6),
    ]
    alone = [served.recommend(h, k=5) for h in (short, long, mixed, [])]
    assert served.recommend_batch([short, long, mixed, []], 5) == alone
    assert served.recommend_batch([long, [], short], 5) == [alone[1], alone[3], alone[0]]
    found = served.search_batch([mixed, short], ["a new query", "other words"], 4)
    assert found == [served.search(mixed, "a new query", 4), served.search(short, "other words", 4)]
    assert len(found[0]) == 4 and all(p.item_id in served.item_index for p in found[0])
    # the unknown item is skipped: the history reads as if it were absent
    assert served.recommend(mixed, 5) == served.recommend(mixed[:2], 5)
    from gensar.errors import GensarError

    with pytest.raises(GensarError, match="unknown behaviour"):
        served.recommend([{"behaviour": "buy", "item_id": ids[0]}], 3)
    with pytest.raises(GensarError, match="k must be"):
        served.recommend(short, 0)
    with pytest.raises(GensarError, match="query is empty"):
        served.search(short, "  ", 3)
