"""One level of residual quantisation (paper Eq. 3-4, 9) and the k-means that initialises it.

k-means is written here in torch rather than taken from a library: scikit-learn
is not a dependency, scipy's ``kmeans2`` runs on NumPy only (no GPU) and has no
seedable generator of its own, and the whole algorithm (k-means++ seeding plus
Lloyd steps with empty-cluster re-seeding) is thirty lines that run on the
model's device with the stage's seeded ``torch.Generator``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def squared_distances(x: Tensor, codebook: Tensor) -> Tensor:
    """||x_b - e_k||^2 for every row b of ``x`` [B, D] and code k of ``codebook`` [K, D]."""
    return (
        x.pow(2).sum(-1, keepdim=True)
        - 2.0 * x @ codebook.t()
        + codebook.pow(2).sum(-1).unsqueeze(0)
    ).clamp_min(0.0)


def kmeans(x: Tensor, k: int, iters: int, generator: torch.Generator) -> Tensor:
    """Centres [k, D] of ``x`` [N, D]: k-means++ seeding, then ``iters`` Lloyd steps.

    A cluster that empties is re-seeded with the point worst served by its centre,
    so every one of the k centres ends up in use (codebook usage starts high).
    With fewer points than k, the spare centres are jittered copies of points.
    """
    x = x.detach().float()
    n = x.shape[0]
    if n == 0:
        raise ValueError("k-means needs at least one point")
    if n <= k:
        extra = torch.randint(n, (k - n,), generator=generator, device=x.device)
        spread = x.std(0, unbiased=False).mean().clamp_min(1e-6) * 1e-3
        noise = torch.randn(k - n, x.shape[1], generator=generator, device=x.device) * spread
        order = torch.randperm(n, generator=generator, device=x.device)
        return torch.cat([x[order], x[extra] + noise])
    # k-means++ (Arthur & Vassilvitskii 2007): sample each new centre prop. to D(x)^2.
    first = torch.randint(n, (1,), generator=generator, device=x.device)
    centres = [x[first]]
    best = squared_distances(x, centres[0]).squeeze(1)
    for _ in range(1, k):
        weights = best if best.sum() > 0 else torch.ones_like(best)
        pick = torch.multinomial(weights, 1, generator=generator)
        centres.append(x[pick])
        best = torch.minimum(best, squared_distances(x, x[pick]).squeeze(1))
    centre = torch.cat(centres)
    for _ in range(iters):
        dist = squared_distances(x, centre)
        assign = dist.argmin(1)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centre).index_add_(0, assign, x)
        moved = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
        centre = torch.where((counts > 0).unsqueeze(1), moved, centre)
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            err = dist.gather(1, assign.unsqueeze(1)).squeeze(1)
            worst = err.topk(len(empty)).indices
            centre[empty] = x[worst]
    return centre


class LevelOutput(NamedTuple):
    """What one quantiser level produces for a batch of residuals."""

    codes: Tensor  #: [B] int64, the nearest code (Eq. 3 / 4 argmin)
    vectors: Tensor  #: [B, D] the chosen code vectors e_c, detached (the next residual is r - e_c)
    loss: Tensor  #: codebook + alpha * commitment, both MSE (one term of Eq. 9)


class ResidualQuantizer(nn.Module):
    """A codebook C = {e_k} of K learnable D-dim vectors (one level of Eq. 3 or 4)."""

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.beta = beta
        # uniform(-1/K, 1/K) as nn.Embedding-based RQ-VAEs do; k-means overwrites it.
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, dim).uniform_(-1 / codebook_size, 1 / codebook_size)
        )

    @property
    def codebook_size(self) -> int:
        return int(self.codebook.shape[0])

    def distances(self, residual: Tensor) -> Tensor:
        return squared_distances(residual, self.codebook)

    def forward(self, residual: Tensor) -> LevelOutput:
        codes = self.distances(residual.detach()).argmin(-1)
        chosen = self.codebook[codes]
        # Eq. (9): ||sg[r] - e||^2 trains the codebook, alpha ||r - sg[e]||^2 the encoder.
        codebook_loss = F.mse_loss(chosen, residual.detach())
        commitment_loss = F.mse_loss(residual, chosen.detach())
        return LevelOutput(codes, chosen.detach(), codebook_loss + self.beta * commitment_loss)

    @torch.no_grad()
    def init_kmeans(self, residual: Tensor, iters: int, generator: torch.Generator) -> None:
        """Set the codebook to k-means centres of ``residual`` (SPEC 4: first-batch init)."""
        centres = kmeans(residual.cpu(), self.codebook_size, iters, generator)  # CPU generator
        self.codebook.copy_(centres.to(self.codebook.device))

    @torch.no_grad()
    def reset_codes(self, dead: Tensor, residual: Tensor, generator: torch.Generator) -> None:
        """Move the ``dead`` codes onto residuals drawn in proportion to their quantisation error.

        Items far from their code are the ones a crowded code serves badly; a dead
        code placed on them splits that crowd, which both raises usage and lowers
        collisions.
        """
        if len(dead) == 0 or residual.shape[0] == 0:
            return
        weights = self.distances(residual).min(1).values.clamp_min(1e-12).cpu()
        replace = len(dead) > residual.shape[0]
        rows = torch.multinomial(weights, len(dead), replacement=replace, generator=generator)
        self.codebook[dead] = residual[rows.to(residual.device)].to(self.codebook.dtype)
