"""GenSR's loss terms: Yes/No cross-entropy and the symmetric InfoNCE alignment."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def yes_no_loss(answer_logprobs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the answer token: ``-log P(Yes)`` for a positive (label 1),
    ``-log P(No)`` for a negative (label 0). ``answer_logprobs`` is [n, 2] (Yes, No)
    log-probabilities over the whole vocabulary (the seq2seq cross-entropy of a
    one-token answer)."""
    chosen = torch.where(labels.bool(), answer_logprobs[:, 0], answer_logprobs[:, 1])
    return -chosen.mean()


def symmetric_infonce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between row-paired views ``a`` and ``b`` ([n, d]): cosine
    similarities / temperature, cross-entropy towards the diagonal in both directions,
    averaged. 0 for fewer than two pairs (no negatives)."""
    if a.shape[0] < 2:
        return a.new_zeros(())
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
