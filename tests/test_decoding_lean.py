"""The lean T5 path computes what transformers' T5 computes, and the searches agree on both paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_decoding_beam import (  # noqa: F401 - one_thread is an autouse fixture
    SPECIAL,
    one_thread,
    random_catalogue,
    random_inputs,
    tiny_bert2bert,
    tiny_t5,
)
from transformers import T5ForConditionalGeneration

from gensar.decoding import beam_search, lean_t5, restricted_beam_search, score_candidates
from gensar.decoding.reference import check_same_ranking
from gensar.errors import GensarError


def t5_variant(act: str, tied: bool) -> T5ForConditionalGeneration:
    """T5 1.0 (relu, tied, output scaled) and T5 1.1 style (gated-gelu, untied) tiny models,
    with more decoder than encoder layers and few position buckets (long distances share one)."""
    return tiny_t5(
        feed_forward_proj=act,
        tie_word_embeddings=tied,
        num_decoder_layers=3,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
    )


@pytest.mark.parametrize("act,tied", [("relu", True), ("gated-gelu", False)])
def test_encoder_and_incremental_steps_match_transformers(act, tied):
    """Padding, a multi-token prompt, one-token steps, rows grouped per input, re-ordered cache."""
    model = t5_variant(act, tied)
    ids, mask = random_inputs(3, seed=7)
    ids = ids.clamp(max=119)
    decoder_ids = torch.randint(2, 120, (3, 6), generator=torch.Generator().manual_seed(7))
    lean = lean_t5.LeanT5(model, max_decoder_length=4)  # small: the bias table must grow
    with torch.inference_mode():
        stock = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
        encoded = lean.encode(ids, mask)
        first, cache = lean.step(encoded, decoder_ids[:, :3], None)
        rest, cache = lean.step(encoded, decoder_ids[:, 3:], cache)
        torch.testing.assert_close(torch.cat([first, rest], 1), stock, atol=1e-4, rtol=1e-4)

        # two rows per input, in input order; the second row of input 1 takes another token
        group = torch.arange(3).repeat_interleave(2)
        cache.reorder(group)
        tokens = torch.randint(2, 120, (6, 1), generator=torch.Generator().manual_seed(8))
        grouped, _ = lean.step(encoded, tokens, cache)
        full = torch.cat([decoder_ids[group], tokens], 1)
        stock = model(
            input_ids=ids[group], attention_mask=mask[group], decoder_input_ids=full
        ).logits[:, -1:]
        torch.testing.assert_close(grouped, stock, atol=1e-4, rtol=1e-4)


def test_only_float32_t5_takes_the_lean_path():
    assert lean_t5.supports(tiny_t5())
    assert not lean_t5.supports(tiny_t5().to(torch.bfloat16))
    assert not lean_t5.supports(tiny_bert2bert())


def test_searches_agree_on_both_backends():
    model = tiny_t5(seed=3)
    catalogue = random_catalogue(80, seed=3)
    ids, mask = random_inputs(3, seed=3)
    lists = [np.random.default_rng(b).choice(catalogue.items, 12, replace=False) for b in range(3)]
    for search in (
        lambda backend: beam_search(
            model, ids, mask, catalogue, SPECIAL, num_beams=7, backend=backend
        ),
        lambda backend: restricted_beam_search(
            model, ids, mask, catalogue, lists, SPECIAL, num_beams=5, backend=backend
        ),
        lambda backend: score_candidates(
            model, ids, mask, catalogue, lists, SPECIAL, backend=backend
        ).ranked(),
    ):
        check_same_ranking(search("auto"), search("transformers"), tol=1e-4)


def test_unknown_backend_is_a_user_error():
    model = tiny_t5()
    catalogue = random_catalogue(10)
    ids, mask = random_inputs(1)
    with pytest.raises(GensarError, match="unknown decoding backend 'fast'"):
        beam_search(model, ids, mask, catalogue, SPECIAL, num_beams=2, backend="fast")
