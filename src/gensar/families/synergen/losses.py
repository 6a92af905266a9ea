"""SynerGen's loss terms, each per target (so tasks can be weighted afterwards).

* Retrieval, **InfoNCE** (van den Oord et al., 2018): for state ``u`` and positive
  item ``p``, ``-log exp(u.e_p/T) / sum_{c in C} exp(u.e_c/T)`` where ``C`` is the
  positive, the other targets of the batch (in-batch negatives; a column holding
  the same item as the positive is masked out) and shared sampled negatives.
* Retrieval, **full softmax**: the same with ``C`` = the whole catalogue.
* Ranking, **pointwise** binary cross-entropy: ``softplus(-s_p) + sum_n softplus(s_n)``
  divided by ``1 + #negatives`` (mean BCE over the scored pairs, labels 1 and 0).
* Ranking, **pairwise** BPR (Rendle et al., 2009): mean over negatives of
  ``-log sigmoid(s_p - s_n) = softplus(s_n - s_p)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[t] cross-entropy of ``targets`` [t] under full-catalogue ``logits`` [t, n_items]."""
    return F.cross_entropy(logits, targets, reduction="none")


def infonce_loss(
    queries: torch.Tensor,
    item_vectors: torch.Tensor,
    targets: torch.Tensor,
    sampled: torch.Tensor,
) -> torch.Tensor:
    """[t] InfoNCE with in-batch and sampled negatives.

    ``queries`` [t, d] (already divided by the temperature), ``item_vectors``
    [n_items, d], ``targets`` [t] item rows, ``sampled`` [s] item rows shared by
    every target. Column r of the first t columns is target r's positive; any
    other column holding target r's item is masked out, so the positive is never
    counted as its own negative.
    """
    columns = torch.cat([targets, sampled])
    logits = queries @ item_vectors[columns].T  # [t, t + s]
    t = targets.shape[0]
    same = columns[None, :] == targets[:, None]
    same[torch.arange(t), torch.arange(t)] = False
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(t, device=logits.device), reduction="none")


def pointwise_loss(positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """[t] mean binary cross-entropy over each target's positive [t] and negatives [t, k]."""
    total = F.softplus(-positive) + F.softplus(negatives).sum(-1)
    return total / (1 + negatives.shape[-1])


def bpr_loss(positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """[t] mean over negatives of ``-log sigmoid(s_pos - s_neg)``."""
    return F.softplus(negatives - positive[:, None]).mean(-1)
