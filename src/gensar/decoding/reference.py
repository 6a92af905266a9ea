"""The stock ``transformers`` way to do what this package does faster.

Used by the tests and ``benchmarks/decoding_speed.py`` to check that the fast
paths return the same items with the same scores, and to time them against:

* :func:`stock_beam_search`: ``model.generate(num_beams=..., prefix_allowed_tokens_fn=...)``
  with a dict-of-prefixes trie (the usual TIGER/LC-Rec/GenSAR implementation);
  ``length_penalty=0`` so that its sequence scores are summed
  log-probabilities (all identifiers have the same length, so the ranking
  is the same as with the default penalty).
* :func:`stock_candidate_scores`: one teacher-forced ``model(...)`` call with
  the encoder input repeated once per candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from gensar.decoding.beam import RankedItems
from gensar.decoding.scoring import CandidateScores
from gensar.decoding.seq2seq import SpecialTokens
from gensar.decoding.trie import IdentifierCatalogue


def prefix_table(codes: np.ndarray, eos: int) -> dict[tuple[int, ...], list[int]]:
    """Allowed next tokens after every prefix of every identifier (EOS after a full one)."""
    table: dict[tuple[int, ...], set[int]] = {}
    for row in codes.tolist():
        for depth in range(len(row) + 1):
            nxt = row[depth] if depth < len(row) else eos
            table.setdefault(tuple(row[:depth]), set()).add(nxt)
    return {prefix: sorted(tokens) for prefix, tokens in table.items()}


def allowed_tokens_fn(
    tables: Sequence[dict[tuple[int, ...], list[int]]],
    behaviour_token: int,
    special: SpecialTokens,
    num_beams: int,
) -> Callable[[int, torch.Tensor], list[int]]:
    """``prefix_allowed_tokens_fn`` for ``generate``: ``tables[i]`` constrains input ``i`` (or all)."""

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        generated = sent.tolist()[1:]  # drop decoder_start
        if not generated:
            return [behaviour_token]
        if generated[0] != behaviour_token or special.eos in generated:
            return [special.pad]
        table = tables[batch_id if len(tables) > 1 else 0]
        return table.get(tuple(generated[1:]), [special.pad])

    return allowed


def stock_beam_search(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    catalogue: IdentifierCatalogue,
    special: SpecialTokens,
    *,
    num_beams: int = 20,
    top_k: int | None = None,
    candidates: Sequence[Sequence[int]] | None = None,
    tables: Sequence[dict[tuple[int, ...], list[int]]] | None = None,
) -> RankedItems:
    """Constrained beam search with ``model.generate``; returns items like :func:`beam_search`.

    ``tables`` (from :func:`prefix_table`) can be passed in to keep building
    them out of a timing.
    """
    top_k = num_beams if top_k is None else top_k
    if tables is None:
        if candidates is None:
            tables = [prefix_table(catalogue.codes, special.eos)]
        else:
            tables = [
                prefix_table(catalogue.codes[catalogue.rows(np.asarray(c))], special.eos)
                for c in candidates
            ]
    batch = input_ids.shape[0]
    length = catalogue.length
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=None if attention_mask is None else attention_mask.to(model.device),
            num_beams=num_beams,
            num_return_sequences=num_beams,
            prefix_allowed_tokens_fn=allowed_tokens_fn(
                tables, catalogue.behaviour_token, special, num_beams
            ),
            max_new_tokens=length + 2,
            length_penalty=0.0,
            early_stopping=True,
            do_sample=False,
            decoder_start_token_id=special.decoder_start,
            eos_token_id=special.eos,
            pad_token_id=special.pad,
            return_dict_in_generate=True,
            output_scores=True,
        )
    item_of = {
        tuple(row): int(item)
        for row, item in zip(catalogue.codes.tolist(), catalogue.items, strict=True)
    }
    sequences = out.sequences.view(batch, num_beams, -1).tolist()
    scores = out.sequences_scores.view(batch, num_beams).float()
    items = torch.full((batch, num_beams), -1, dtype=torch.long)
    for b in range(batch):
        for j, seq in enumerate(sequences[b]):
            body = seq[1:]
            complete = (
                len(body) >= length + 2
                and body[0] == catalogue.behaviour_token
                and body[length + 1] == special.eos
            )
            items[b, j] = item_of.get(tuple(body[1 : length + 1]), -1) if complete else -1
    scores = scores.masked_fill(items < 0, float("-inf"))
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :top_k]
    return RankedItems(items.gather(1, order), scores.gather(1, order))


def stock_candidate_scores(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    catalogue: IdentifierCatalogue,
    candidates: Sequence[Sequence[int]],
    special: SpecialTokens,
) -> CandidateScores:
    """Teacher-forced log-likelihood of ``behaviour + identifier + EOS``, one input at a time.

    Each input is repeated once per candidate and the whole model runs on the
    batch of (input, candidate) pairs: what a plain ``model(...)`` call does.
    """
    width = max(len(c) for c in candidates)
    items = torch.full((len(candidates), width), -1, dtype=torch.long)
    scores = torch.full((len(candidates), width), float("-inf"))
    device = model.device
    with torch.inference_mode():
        for b, cand in enumerate(candidates):
            if not cand:
                continue
            codes = torch.from_numpy(catalogue.codes[catalogue.rows(np.asarray(cand))]).to(device)
            n = codes.shape[0]
            behaviour = torch.full((n, 1), catalogue.behaviour_token, device=device)
            eos = torch.full((n, 1), special.eos, device=device)
            start = torch.full((n, 1), special.decoder_start, device=device)
            targets = torch.cat([behaviour, codes, eos], dim=1)
            decoder_input_ids = torch.cat([start, targets[:, :-1]], dim=1)
            mask = (
                None
                if attention_mask is None
                else attention_mask[b : b + 1].expand(n, -1).to(device)
            )
            logits = model(
                input_ids=input_ids[b : b + 1].expand(n, -1).to(device),
                attention_mask=mask,
                decoder_input_ids=decoder_input_ids,
            ).logits.float()
            log_probs = logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            items[b, :n] = torch.as_tensor(cand)
            scores[b, :n] = log_probs.sum(-1).cpu()
    return CandidateScores(items, scores)


def check_same_ranking(ours: RankedItems, theirs: RankedItems, tol: float = 1e-4) -> None:
    """Raise AssertionError unless both rankings agree rank by rank.

    Scores must match within ``tol``; a different item at a rank is accepted
    only inside a tie (a neighbouring score within ``tol``), where float
    rounding may legitimately swap the order.
    """
    if ours.items.shape != theirs.items.shape:
        raise AssertionError(
            f"shapes differ: {tuple(ours.items.shape)} vs {tuple(theirs.items.shape)}"
        )
    if not torch.equal(ours.items < 0, theirs.items < 0):
        raise AssertionError("different numbers of results")
    found = ours.items >= 0
    gap = (ours.scores[found] - theirs.scores[found]).abs()
    if gap.numel() and float(gap.max()) > tol:
        raise AssertionError(f"scores differ by up to {float(gap.max()):.2e} (> {tol})")
    for b, j in (ours.items != theirs.items).nonzero().tolist():
        s = ours.scores[b]
        tied = (j > 0 and s[j - 1] - s[j] < tol) or (j + 1 < len(s) and s[j] - s[j + 1] < tol)
        if not tied:
            raise AssertionError(
                f"input {b}, rank {j}: {ours.items[b].tolist()} vs {theirs.items[b].tolist()}"
            )
