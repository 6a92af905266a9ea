"""Batched candidate scoring: every candidate of a sample in one decoder batch that
shares the sample's encoded (prompt, history)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gensar.families.gensr.data import Entry, Layout, pad
from gensar.families.gensr.model import GenSR


@torch.no_grad()
def score_rows(
    model: GenSR,
    layout: Layout,
    tasks: Sequence[str],
    queries: Sequence[str | None],
    histories: Sequence[Sequence[Entry]],
    rows: np.ndarray,
    *,
    batch: int,
    device,
) -> np.ndarray:
    """[n, c] P(Yes) of item rows ``rows`` [n, c] for n samples (higher = better)."""
    rows = np.asarray(rows, dtype=np.int64)
    n, width = rows.shape
    out = np.zeros((n, width), dtype=np.float64)
    was_training = model.training
    model.eval()
    # samples of similar input length together: less padding
    parts = [layout.encoder(t, q, h) for t, q, h in zip(tasks, queries, histories, strict=True)]
    order = np.argsort([len(p[0]) for p in parts], kind="stable")
    for start in range(0, n, batch):
        chunk = order[start : start + batch]
        encoder = pad([parts[i] for i in chunk], layout.pad_id).to(device)
        candidates = layout.candidates(rows[chunk].reshape(-1).tolist()).to(device)
        logp = model(encoder, candidates, width)
        out[chunk] = logp[:, 0].exp().view(len(chunk), width).double().cpu().numpy()
    model.train(was_training)
    return out
