"""Next-query suggestions: forced <S_Q>, banned tokens, distinct texts, exact beam scores."""

from __future__ import annotations

import pytest
import torch
from test_decoding_beam import (  # noqa: F401 - one_thread is an autouse fixture
    SPECIAL,
    VOCAB,
    one_thread,
    random_inputs,
    tiny_t5,
)

from gensar.decoding import suggest_queries
from gensar.errors import GensarError

QUERY_TOKEN = 6


class WordTokenizer:
    """Decodes id i as 'w<i // 2>': two ids per word, so different sequences can give one text."""

    def decode(self, token_ids, skip_special_tokens=True):
        return " ".join(f"w{i // 2}" for i in token_ids if i not in (0, 1))


@pytest.fixture(scope="module")
def t5():
    return tiny_t5(seed=3)


def test_suggestions_are_distinct_ranked_and_avoid_banned_tokens(t5):
    ids, mask = random_inputs(2, seed=11)
    allowed = set(range(60, 72))
    banned = [t for t in range(VOCAB) if t not in allowed and t != SPECIAL.eos]
    out = suggest_queries(
        t5,
        ids,
        mask,
        WordTokenizer(),
        QUERY_TOKEN,
        SPECIAL,
        k=4,
        num_beams=8,
        banned_token_ids=banned,
    )
    assert len(out) == 2
    for suggestions in out:
        assert 1 <= len(suggestions) <= 4
        texts = [s.text for s in suggestions]
        assert len(set(texts)) == len(texts) and all(texts)
        scores = [s.score for s in suggestions]
        assert scores == sorted(scores, reverse=True)
        for s in suggestions:
            assert set(s.token_ids) <= allowed
            assert s.text == WordTokenizer().decode(s.token_ids)


def test_score_is_the_log_likelihood_after_the_forced_query_token(t5):
    ids, mask = random_inputs(1, seed=12)
    best = suggest_queries(
        t5,
        ids,
        mask,
        WordTokenizer(),
        QUERY_TOKEN,
        SPECIAL,
        k=1,
        num_beams=4,
        max_new_tokens=6,
        length_penalty=0.0,
    )[0][0]
    prefix = [SPECIAL.decoder_start, QUERY_TOKEN]
    candidates = [
        best.token_ids + [SPECIAL.eos],
        best.token_ids,
    ]  # ended by EOS, or by the length limit
    expected = []
    with torch.inference_mode():
        for target in candidates:
            decoder_input = torch.tensor([prefix + target[:-1]])
            logits = t5(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_input).logits
            log_probs = logits[0, 1:].log_softmax(-1)  # predictions after <S_Q>
            expected.append(float(log_probs.gather(1, torch.tensor(target)[:, None]).sum()))
    assert min(abs(best.score - e) for e in expected) < 1e-4


def test_k_larger_than_beams_is_a_user_error(t5):
    ids, mask = random_inputs(1)
    with pytest.raises(GensarError, match="k <= num_beams"):
        suggest_queries(t5, ids, mask, WordTokenizer(), QUERY_TOKEN, SPECIAL, k=5, num_beams=3)
