"""Constrained beam search over item identifiers.

Why not ``model.generate(..., prefix_allowed_tokens_fn=...)``: identifiers are
short (behaviour token + 4 codes + EOS), so a search is only a handful of
decoder steps and fixed costs dominate. Stock generation (a) keeps and
re-orders the cross-attention cache once per beam at every step, (b) calls a
Python function per beam per step for the allowed tokens and (c) runs the
first steps on ``batch * beams`` identical rows. Here:

* the encoder runs once per input and its cross-attention keys/values are
  stored once per input, never copied or re-ordered
  (:mod:`gensar.decoding.lean_t5` for T5, :mod:`gensar.decoding.shared_attention`
  for other models);
* for T5 each decoder call is ~250 ops on the model's own weights instead of
  transformers' ~1,100 (:mod:`gensar.decoding.lean_t5`);
* the forced prefix ``decoder_start, behaviour`` is one decoder call on
  ``batch`` rows, not ``batch * beams``;
* valid continuations come from tensor lookups in an
  :class:`~gensar.decoding.trie.IdentifierTrie`, for all beams at once.

The search is the same as stock beam search with a prefix constraint: at each
depth the ``num_beams`` best (beam, valid token) pairs by cumulative
log-probability survive, and the EOS log-probability after the complete
identifier is added (``include_eos``), so scores equal the log-likelihood of
the whole target ``behaviour + identifier + EOS``. Every trie node is a
distinct prefix, so no item can be returned twice. Ties are broken by the order
of the candidates (earlier beam, smaller token id) and, in the final ranking,
by smaller item index.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers import PreTrainedModel

from gensar.decoding.seq2seq import Backend, Decoder, SpecialTokens, check_inputs, inference
from gensar.decoding.trie import IdentifierCatalogue, IdentifierTrie
from gensar.errors import GensarError


class RankedItems(NamedTuple):
    """Items ranked per input, best first.

    ``items`` and ``scores`` have shape ``(batch, k)``; ``scores`` are total
    log-likelihoods. Where an input has fewer than ``k`` results (a small
    catalogue or candidate list) the row is padded with item ``-1`` and score
    ``-inf``.
    """

    items: torch.Tensor
    scores: torch.Tensor

    def to_lists(self) -> list[list[tuple[int, float]]]:
        """Per input, ``(item, score)`` pairs without the padding."""
        out = []
        for items, scores in zip(self.items.tolist(), self.scores.tolist(), strict=True):
            out.append([(i, s) for i, s in zip(items, scores, strict=True) if i >= 0])
        return out


def beam_search(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    catalogue: IdentifierCatalogue,
    special: SpecialTokens | None = None,
    *,
    num_beams: int = 20,
    top_k: int | None = None,
    trie: IdentifierTrie | None = None,
    include_eos: bool = True,
    backend: Backend = "auto",
) -> RankedItems:
    """Generate the ``top_k`` best items of ``catalogue`` for each input.

    ``input_ids``/``attention_mask`` are the tokenised instructions (batch,
    length). ``trie`` defaults to the whole catalogue; pass
    ``catalogue.restricted_trie(candidates)`` (one group per input) to search
    only each input's candidates. ``include_eos=False`` skips the last decoder
    step (the EOS probability after a complete identifier), which is faster
    and, for a trained model, almost never changes the ranking.
    ``backend="transformers"`` forces the generic decoder path (see
    :func:`~gensar.decoding.seq2seq.inference`).
    """
    input_ids, attention_mask = check_inputs(input_ids, attention_mask)
    special = special or SpecialTokens.from_model(model)
    catalogue.check_special_tokens(*special)
    top_k = num_beams if top_k is None else top_k
    if num_beams < 1 or not 1 <= top_k <= num_beams:
        raise GensarError(f"need 1 <= top_k <= num_beams, got top_k={top_k}, num_beams={num_beams}")
    trie = catalogue.trie if trie is None else trie
    batch = input_ids.shape[0]
    if trie.num_groups not in (1, batch):
        raise GensarError(f"the trie has {trie.num_groups} candidate groups for {batch} inputs")
    trie = trie.to(model.device)
    with inference(model, backend) as decoder:
        encoded = decoder.encode(input_ids, attention_mask)
        return _search(
            decoder,
            encoded,
            catalogue.behaviour_token,
            trie,
            special,
            num_beams,
            top_k,
            include_eos,
        )


def _search(
    decoder: Decoder,
    encoded,
    behaviour_token: int | None,
    trie: IdentifierTrie,
    special: SpecialTokens,
    num_beams: int,
    top_k: int,
    include_eos: bool,
) -> RankedItems:
    batch = encoded.batch_size
    device = trie.device
    forced = [special.decoder_start] + ([] if behaviour_token is None else [behaviour_token])
    prompt = torch.tensor([forced], device=device).expand(batch, len(forced))
    step = decoder.step(encoded, prompt, None)
    if behaviour_token is None:
        scores = torch.zeros(batch, 1, device=device)
    else:
        first = step.logits[:, 0].float().log_softmax(-1)
        scores = first[:, behaviour_token].unsqueeze(1)  # (batch, beams=1)
    log_probs = step.logits[:, -1:].float().log_softmax(-1)  # (batch, beams, vocab)
    cache = step.cache
    roots = (
        torch.arange(batch, device=device)
        if trie.num_groups > 1
        else torch.zeros(batch, dtype=torch.long, device=device)
    )
    nodes = roots.unsqueeze(1)
    rows = torch.arange(batch, device=device).unsqueeze(1)
    for depth in range(trie.depth):
        children = trie.children(depth, nodes)  # (batch, beams, width)
        width = children.tokens.shape[-1]
        if width == 0:  # no candidates anywhere (empty candidate lists)
            empty = torch.full((batch, top_k), -1, dtype=torch.long, device=device)
            return RankedItems(empty, torch.full((batch, top_k), float("-inf"), device=device))
        candidate = scores.unsqueeze(-1) + log_probs.gather(-1, children.tokens)
        candidate = candidate.masked_fill(~children.valid, float("-inf")).flatten(1)
        keep = min(num_beams, int(children.valid.flatten(1).sum(1).max()))
        order = torch.sort(candidate, dim=1, descending=True, stable=True)
        chosen = order.indices[:, :keep]
        scores = order.values[:, :keep]
        parents = chosen // width
        nodes = children.nodes.flatten(1).gather(1, chosen)
        tokens = children.tokens.flatten(1).gather(1, chosen)
        if depth == trie.depth - 1 and not include_eos:
            break
        beams_before = log_probs.shape[1]
        decoder.reorder(cache, (rows * beams_before + parents).flatten())
        step = decoder.step(encoded, tokens.reshape(-1, 1), cache)
        # log_softmax is one fused kernel; logsumexp was ~2x slower here
        log_probs = step.logits[:, -1].float().log_softmax(-1).view(batch, keep, -1)
        cache = step.cache
        if depth == trie.depth - 1:
            scores = scores + log_probs[..., special.eos]
    items = trie.items[nodes]
    return _top(items, scores, top_k)


def _top(items: torch.Tensor, scores: torch.Tensor, top_k: int) -> RankedItems:
    """Best ``top_k`` per row by score, ties by smaller item; pads with -1 / -inf."""
    scores = torch.where(torch.isfinite(scores), scores, float("-inf"))
    items = torch.where(torch.isfinite(scores), items, -1)
    by_item = torch.sort(
        torch.where(items >= 0, items, torch.iinfo(torch.long).max), dim=1, stable=True
    ).indices
    scores, items = scores.gather(1, by_item), items.gather(1, by_item)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    scores, items = scores.gather(1, order), items.gather(1, order)
    if scores.shape[1] < top_k:
        pad = top_k - scores.shape[1]
        scores = torch.cat([scores, scores.new_full((scores.shape[0], pad), float("-inf"))], dim=1)
        items = torch.cat([items, items.new_full((items.shape[0], pad), -1)], dim=1)
    return RankedItems(items[:, :top_k], scores[:, :top_k])
