"""``tasks.soft_tokens``: items and queries entering the encoder as projected vectors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_decoding_beam import SPECIAL, random_catalogue, tiny_t5
from test_model_pipeline import copy_built_stages, one_thread  # noqa: F401 - autouse fixture

from gensar.data import schema
from gensar.decoding import lean_t5, score_candidates
from gensar.decoding.reference import stock_candidate_scores
from gensar.errors import GensarError
from gensar.families.gensar.api import GenSAR
from gensar.families.gensar.soft_inputs import FILE, SoftVocabulary, build_soft_table
from gensar.families.protocols import HistoryEntry
from gensar.model.soft_tokens import attach_soft_tokens, soft_embedding
from gensar.pipeline import build_run

from conftest import tiny_run_config


def _soft_t5(n_soft: int = 5, dim: int = 7):
    model = tiny_t5()
    vectors = torch.randn(n_soft, dim, generator=torch.Generator().manual_seed(3))
    return model, attach_soft_tokens(model, vectors, seed=1), vectors


def test_soft_embedding_projects_vectors_and_keeps_word_rows():
    model, embed, vectors = _soft_t5()
    base = embed.base
    assert embed.weight is model.get_input_embeddings().weight  # tied, not a copy
    ids = torch.tensor([[3, base, 7, base + 4, 0]])
    out = embed(ids)
    shared = model.get_input_embeddings().weight
    torch.testing.assert_close(out[0, 0], shared[3])
    torch.testing.assert_close(out[0, 2], shared[7])
    torch.testing.assert_close(out[0, 1], vectors[0] @ embed.project.weight.T)
    torch.testing.assert_close(out[0, 3], vectors[4] @ embed.project.weight.T)
    out.sum().backward()
    assert embed.project.weight.grad is not None and embed.project.weight.grad.abs().sum() > 0
    assert not embed.vectors.requires_grad
    assert "encoder.embed_tokens.vectors" not in model.state_dict()  # stored once, beside
    # soft tokens sit on the word rows' scale (T5 initialises them with std 1)
    scale = embed(torch.arange(base, base + 5)[None]).std().item()
    assert 0.2 < scale < 5.0


def test_lean_encoder_and_exact_scores_match_transformers_with_soft_tokens():
    """The fast decoding path calls the soft embedding as the stock model does."""
    model, embed, _ = _soft_t5()
    ids = torch.tensor([[5, embed.base + 2, 9, embed.base, 1], [embed.base + 4, 6, 1, 0, 0]])
    mask = (ids != 0).long()
    mask[0] = 1
    with torch.inference_mode():
        stock = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        lean = lean_t5.LeanT5(model).encode(ids, mask)
        assert lean is not None
        catalogue = random_catalogue(12, seed=5)
        items = [int(i) for i in catalogue.items]
        candidates = [[items[0], items[3], items[7], items[11]], [items[1], items[2], items[5]]]
        ours = score_candidates(model, ids, mask, catalogue, candidates, SPECIAL)
        theirs = stock_candidate_scores(model, ids, mask, catalogue, candidates, SPECIAL)
    torch.testing.assert_close(ours.scores, theirs.scores, atol=1e-4, rtol=1e-4)
    assert stock.shape[:2] == ids.shape


def _builder(tiny_run, mode: str):
    from transformers import AutoTokenizer

    from gensar.families.gensar.tasks.builder import TaskBuilder
    from gensar.families.gensar.tasks.config import TaskConfig
    from gensar.ids.identifiers import ItemIdentifiers

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_run / "model"))
    identifiers = ItemIdentifiers.load(tiny_run / "model")
    items = list(identifiers.item_ids)
    config = TaskConfig(soft_tokens=mode)
    soft = None
    if mode != "off":
        soft = SoftVocabulary(len(tokenizer), items, ["red pen"], mode)
    return TaskBuilder(tokenizer, identifiers, {}, config, soft), items


@pytest.mark.parametrize("mode", ["beside", "instead"])
def test_builder_puts_soft_tokens_beside_or_instead_of_eq11_tokens(tiny_run, mode):
    plain, items = _builder(tiny_run, "off")
    soft, _ = _builder(tiny_run, mode)
    base = soft.soft.base
    item = items[1]
    history = [
        HistoryEntry(schema.REC_ITEM, item),
        HistoryEntry(schema.SEARCH_QUERY, None, "red pen"),
        HistoryEntry(schema.SEARCH_ITEM, item),
        HistoryEntry(schema.SEARCH_QUERY, None, "a query never seen"),
    ]
    rec = soft.entry_ids(history[0])
    behaviour = plain.entry_ids(history[0])[:1]
    codes = plain.item_ids(item, "collaborative")
    expected_item = [base + 1] if mode == "instead" else [base + 1, *codes]
    assert rec == behaviour + expected_item
    query = soft.entry_ids(history[1])
    words = plain.query_ids("red pen")
    query_row = base + len(items)
    assert query[1:] == ([query_row] if mode == "instead" else [query_row, *words])
    # a query without a soft token keeps its words in both modes
    assert soft.entry_ids(history[3]) == plain.entry_ids(history[3])
    # the current query of NSIP too; the response never holds soft tokens
    instruction = soft.instruction("nsip", history, query="red pen")
    assert query_row in instruction
    assert max(soft.response("nsip", item_id=item)) < base
    # Desc2ID/ID2Desc keep their words and codes (the item's own vector would be its answer)
    assert soft.alignment_example("id2desc", item, "semantic") == plain.alignment_example(
        "id2desc", item, "semantic"
    )
    text = soft.render(rec)
    assert f"<soft item {item}>" in text
    shorter = len(soft.instruction("nrip", history)) < len(plain.instruction("nrip", history))
    assert shorter == (mode == "instead")


def test_builder_refuses_a_mode_without_its_vocabulary(tiny_run):
    from transformers import AutoTokenizer

    from gensar.families.gensar.tasks.builder import TaskBuilder
    from gensar.families.gensar.tasks.config import TaskConfig
    from gensar.ids.identifiers import ItemIdentifiers

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_run / "model"))
    identifiers = ItemIdentifiers.load(tiny_run / "model")
    with pytest.raises(ValueError, match="soft-token vocabulary"):
        TaskBuilder(tokenizer, identifiers, {}, TaskConfig(soft_tokens="beside"))


def test_soft_table_blocks_have_unit_variance_and_queries_share_the_semantic_space():
    rng = np.random.default_rng(0)
    semantic = rng.normal(3.0, 2.0, (50, 8)).astype(np.float32)
    collab = rng.normal(-1.0, 0.1, (50, 4)).astype(np.float32)
    table = build_soft_table(
        [str(i) for i in range(50)], [semantic, collab], ["q"], semantic[:1], semantic
    )
    items, query = table[:50], table[50]
    assert np.allclose((items[:, :8] ** 2).sum(1).mean(), 1.0, atol=1e-3)
    assert np.allclose((items[:, 8:] ** 2).sum(1).mean(), 1.0, atol=1e-3)
    np.testing.assert_allclose(query[:8], items[0, :8], atol=1e-5)  # same statistics
    assert not query[8:].any()


@pytest.mark.parametrize("mode", ["beside", "instead"])
def test_soft_token_model_trains_saves_loads_and_serves(tiny_dataset, tiny_run, tmp_path, mode):
    run = tmp_path / "run"
    run.mkdir()
    copy_built_stages(tiny_run, run)
    config = tiny_run_config(tiny_dataset, run, **{"train.epochs": 1, "tasks.soft_tokens": mode})
    build_run(config, log=lambda *_: None)
    assert (run / "model" / FILE).is_file()
    model = GenSAR.load(run / "model")
    embed = soft_embedding(model.model)
    assert embed is not None and model.builder.soft.mode == mode
    # the trained projection came back from the weights file, not a fresh initialisation
    from safetensors.torch import load_file

    saved = load_file(str(run / "model" / "model.safetensors"))
    torch.testing.assert_close(saved["encoder.embed_tokens.project.weight"], embed.project.weight)
    items = model.item_ids
    history = [{"behaviour": "rec_item", "item_id": items[0]}]
    assert len({p.item_id for p in model.recommend(history, k=5)}) == 5
    assert len({p.item_id for p in model.search(history, "anything", k=3)}) == 3
    # exact scores of the loaded model agree with beam search (both paths see soft tokens)
    instructions = model.instructions("nrip", [[HistoryEntry(schema.REC_ITEM, items[0])]])
    assert max(instructions[0]) >= embed.base
    top = model.top_k("nrip", instructions, k=3, num_beams=len(items))
    scores = model.score_candidates("nrip", instructions, [list(range(len(items)))])[0]
    assert [i for i, _ in top[0]] == sorted(range(len(scores)), key=lambda i: -scores[i])[:3]


def test_damaged_soft_token_table_is_one_clear_error(tiny_dataset, tiny_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    copy_built_stages(tiny_run, run)
    config = tiny_run_config(
        tiny_dataset, run, **{"train.epochs": 1, "tasks.soft_tokens": "beside"}
    )
    build_run(config, log=lambda *_: None)
    damaged = tmp_path / "damaged"
    shutil.copytree(run / "model", damaged)
    data = bytearray((damaged / FILE).read_bytes())
    data[-3] ^= 0xFF
    (damaged / FILE).write_bytes(bytes(data))
    with pytest.raises(GensarError, match=FILE.replace(".", r"\.")):
        GenSAR.load(damaged)
    (damaged / FILE).unlink()
    with pytest.raises(GensarError):
        GenSAR.load(damaged)


def test_plain_model_directory_has_no_soft_tokens(tiny_run):
    assert not (Path(tiny_run) / "model" / FILE).exists()
    assert soft_embedding(GenSAR.load(tiny_run / "model").model) is None


def test_soft_tokens_on_an_encoder_without_embed_tokens_is_a_clear_error():
    from test_decoding_beam import tiny_bert2bert

    from gensar.errors import ConfigError

    with pytest.raises(ConfigError, match="T5-style encoder"):
        attach_soft_tokens(tiny_bert2bert(), torch.zeros(3, 4))
