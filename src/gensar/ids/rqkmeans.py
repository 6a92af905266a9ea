"""Residual k-means identifiers (``index.method = rqkmeans``), as GRID and MiniOneRec offer.

No encoder, no decoder, no gradient: each level is k-means on the residual the
levels above it leave, in the (standardised) embedding space itself.

Joint variant, the shared-prefix structure of paper Eq. 2-10 without the MLPs:
each side is centred and scaled to unit total variance and weighted by
sqrt(w) / sqrt(1 - w) (``semantic_weight``); the L_m shared levels cluster the
concatenation r_0^m = [v_s; v_c] (Eq. 3); the shared residual is split into its
semantic part [0:D_s] and its collaborative part [D_s:] and each is clustered
by L_n specific levels of its own (Eq. 4); the sum of the chosen centres is the
reconstruction (Eq. 6). Ablation variants: plain residual k-means on one side.

The model has the same surface as :class:`gensar.ids.rqvae.JointRQVAE` that the
assignment steps use (``levels``, ``quantizers``, ``identifier_levels``,
``encode_all``), so argmax -> Sinkhorn -> de-duplication runs unchanged, and the
codebooks are saved under the same ``quantizers.<level>.codebook`` names, which
GenSAR reads to initialise identifier tokens. Shared code vectors are D_s + D_c
wide, semantic-first, as ``init_identifier_embeddings`` expects.

k-means itself is :func:`gensar.ids.quantize.kmeans` (k-means++ then Lloyd
steps, the one the RQ-VAE's initialisation uses), with an optional balanced
assignment step (:func:`balanced_assign`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from gensar.errors import DataError
from gensar.ids.config import IndexConfig
from gensar.ids.quantize import ResidualQuantizer, kmeans, squared_distances
from gensar.ids.rqvae import (
    COLLABORATIVE,
    SEMANTIC,
    SHARED,
    Encoded,
    IdentifierLevels,
    LevelSpec,
    level_specs,
)


def balanced_assign(dist: Tensor, capacity: int) -> Tensor:
    """Assign each row of ``dist`` [N, K] to a column, at most ``capacity`` rows per column.

    Rounds of proposals: every unassigned row proposes its nearest column that
    still has room; each column accepts its closest proposers up to its room.
    Needs N <= K * capacity. A greedy approximation of the capacity-constrained
    transport (exact solvers are O(N^3)); it ends after at most K rounds because
    each round fills at least one column or assigns every proposer.
    """
    n, k = dist.shape
    if n > k * capacity:
        raise ValueError(f"{n} rows do not fit in {k} columns of capacity {capacity}")
    assign = torch.full((n,), -1, dtype=torch.long)
    room = torch.full((k,), capacity, dtype=torch.long)
    dist = dist.detach().cpu().double()
    while True:
        todo = torch.nonzero(assign < 0).flatten()
        if len(todo) == 0:
            return assign
        masked = dist[todo].masked_fill((room == 0).unsqueeze(0), float("inf"))
        choice = masked.argmin(1)
        chosen_dist = masked.gather(1, choice.unsqueeze(1)).squeeze(1)
        # Sort proposers by (column, distance); a proposer's rank inside its column decides.
        order = torch.argsort(chosen_dist, stable=True)
        order = order[torch.argsort(choice[order], stable=True)]
        sorted_choice = choice[order]
        first = torch.searchsorted(sorted_choice, sorted_choice, right=False)
        rank = torch.arange(len(order)) - first
        accept = rank < room[sorted_choice]
        rows = todo[order[accept]]
        assign[rows] = sorted_choice[accept]
        room -= torch.bincount(sorted_choice[accept], minlength=k)


def lloyd(
    x: Tensor, k: int, iters: int, generator: torch.Generator, *, balanced: bool = False
) -> Tensor:
    """k-means centres [k, D] of ``x``; balanced: each Lloyd step caps clusters at ceil(N/k)."""
    centres = kmeans(x, k, 0 if balanced else iters, generator)
    if not balanced or x.shape[0] <= k:
        return centres
    capacity = math.ceil(x.shape[0] / k)
    for _ in range(iters):
        assign = balanced_assign(squared_distances(x, centres), capacity)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        moved = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
        centres = torch.where((counts > 0).unsqueeze(1), moved, centres)
    return centres


class ResidualKMeans(IdentifierLevels, nn.Module):
    """Codebooks of residual k-means for one identifier variant (no trainable encoder)."""

    method = "rqkmeans"

    def __init__(self, config: IndexConfig, semantic_dim: int, collaborative_dim: int):
        super().__init__()
        self.config = config
        self.variant = config.variant
        self.input_dims = {SEMANTIC: semantic_dim, COLLABORATIVE: collaborative_dim}
        self.towers = [SEMANTIC, COLLABORATIVE] if self.variant == "joint" else [self.variant]
        self.levels = self._level_specs()
        self.quantizers = nn.ModuleDict(
            {s.name: ResidualQuantizer(config.codebook_size, s.dim) for s in self.levels}
        )
        for t in self.towers:
            self.register_buffer(f"mean_{t}", torch.zeros(self.input_dims[t]))
            self.register_buffer(f"scale_{t}", torch.ones(()))

    def _level_specs(self) -> list[LevelSpec]:
        ds, dc = self.input_dims[SEMANTIC], self.input_dims[COLLABORATIVE]
        return level_specs(self.variant, self.config, ds + dc, self.input_dims)

    # --- standardisation -------------------------------------------------------------------

    def weights(self) -> dict[str, float]:
        if self.variant != "joint":
            return {self.variant: 1.0}
        w = self.config.semantic_weight
        return {SEMANTIC: w, COLLABORATIVE: 1.0 - w}

    @torch.no_grad()
    def fit_input_stats(self, inputs: dict[str, Tensor]) -> None:
        """Centre each side and scale it to total variance = its weight."""
        for t, weight in self.weights().items():
            x = inputs[t].float()
            mean = x.mean(0)
            total = (x - mean).pow(2).sum(1).mean().sqrt().clamp_min(1e-8)
            getattr(self, f"mean_{t}").copy_(mean)
            getattr(self, f"scale_{t}").copy_(total / math.sqrt(weight))

    def normalized(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {
            t: (inputs[t].float() - getattr(self, f"mean_{t}")) / getattr(self, f"scale_{t}")
            for t in self.towers
        }

    # --- fitting and encoding ----------------------------------------------------------------

    def _pick(self, name: str, residual: Tensor) -> Tensor:
        quantizer = self.quantizers[name]
        dist = quantizer.distances(residual)
        if self.config.balanced and residual.shape[0] > quantizer.codebook_size:
            capacity = math.ceil(residual.shape[0] / quantizer.codebook_size)
            return balanced_assign(dist, capacity)
        return dist.argmin(1)

    def _run(self, x: dict[str, Tensor], fit_generator: torch.Generator | None, bar) -> Encoded:
        """Eq. (3)-(6) on normalised inputs; with a generator, fit each level on the way."""
        codes: list[Tensor] = []
        level_inputs: list[Tensor] = []

        def level(name: str, residual: Tensor) -> Tensor:
            if fit_generator is not None:
                centres = lloyd(
                    residual,
                    self.quantizers[name].codebook_size,
                    self.config.rqkmeans_iters,
                    fit_generator,
                    balanced=self.config.balanced,
                )
                self.quantizers[name].codebook.data.copy_(centres)
                if bar is not None:
                    bar.update(1)
            chosen = self._pick(name, residual)
            codes.append(chosen)
            level_inputs.append(residual)
            return self.quantizers[name].codebook.detach()[chosen]

        sums: dict[str, Tensor] = {t: torch.zeros_like(x[t]) for t in self.towers}
        if self.variant == "joint":
            ds = self.input_dims[SEMANTIC]
            residual = torch.cat([x[SEMANTIC], x[COLLABORATIVE]], dim=-1)  # r_0^m, Eq. (3)
            shared_sum = torch.zeros_like(residual)
            for spec in self.levels:
                if spec.kind == SHARED:
                    vectors = level(spec.name, residual)
                    residual = residual - vectors
                    shared_sum = shared_sum + vectors
            halves = {SEMANTIC: residual[:, :ds], COLLABORATIVE: residual[:, ds:]}
            sums = {SEMANTIC: shared_sum[:, :ds], COLLABORATIVE: shared_sum[:, ds:]}
            for spec in self.levels:  # Eq. (4): each side's own residual
                if spec.kind != SHARED:
                    vectors = level(spec.name, halves[spec.kind])
                    halves[spec.kind] = halves[spec.kind] - vectors
                    sums[spec.kind] = sums[spec.kind] + vectors
        else:
            (tower,) = self.towers
            residual = x[tower]
            for spec in self.levels:
                vectors = level(spec.name, residual)
                residual = residual - vectors
                sums[tower] = sums[tower] + vectors
        zero = torch.zeros(())
        return Encoded(torch.stack(codes, dim=1), level_inputs, sums, zero)

    @torch.no_grad()
    def fit(self, inputs: dict[str, Tensor], *, progress: bool = False) -> Encoded:
        """Standardise, then fit every level on the residuals of the levels above it."""
        generator = torch.Generator().manual_seed(self.config.seed)
        data = {t: inputs[t].float().cpu() for t in self.towers}
        self.fit_input_stats(data)
        bar = tqdm(total=len(self.levels), desc="rq-kmeans", unit="level", disable=not progress)
        try:
            return self._run(self.normalized(data), generator, bar)
        finally:
            bar.close()

    @torch.no_grad()
    def encode_all(self, inputs: dict[str, Tensor]) -> Encoded:
        """Codes of a whole catalogue (in one piece: a balanced assignment spans all items)."""
        data = {t: inputs[t].float().cpu() for t in self.towers}
        return self._run(self.normalized(data), None, None)

    @torch.no_grad()
    def reconstruction(self, inputs: dict[str, Tensor]) -> dict[str, Any]:
        """Per side: MSE in the standardised space and the fraction of variance unexplained."""
        x = self.normalized({t: inputs[t].float().cpu() for t in self.towers})
        z_hat = self.encode_all(inputs).z_hat
        out: dict[str, Any] = {}
        for t in self.towers:
            mse = float((z_hat[t] - x[t]).pow(2).mean())
            variance = float((x[t] - x[t].mean(0)).pow(2).mean())
            out[t] = {"mse": mse, "fraction_unexplained": mse / variance if variance > 0 else None}
        return out

    def codebooks(self) -> dict[str, Tensor]:
        return {name: q.codebook.detach() for name, q in self.quantizers.items()}


def save_rqkmeans(model: ResidualKMeans, path: str | Path) -> None:
    """Codebooks and standardisation as safetensors; settings in the metadata."""
    metadata = {
        "method": ResidualKMeans.method,
        "config": model.config.model_dump_json(),
        "semantic_dim": str(model.input_dims[SEMANTIC]),
        "collaborative_dim": str(model.input_dims[COLLABORATIVE]),
        "levels": json.dumps(model.level_names),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_index_model(path: str | Path) -> nn.Module:
    """The model written beside the identifiers, whichever method built it."""
    from gensar.ids.rqvae import load_rqvae

    path = Path(path)
    if not path.is_file():
        raise DataError(
            "identifier codebooks not found", where=path, fix="run `gensar index` first"
        )
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("method") != ResidualKMeans.method:
        return load_rqvae(path)
    config = IndexConfig.model_validate_json(metadata["config"])
    model = ResidualKMeans(
        config, int(metadata["semantic_dim"]), int(metadata["collaborative_dim"])
    )
    model.load_state_dict(load_file(str(path)))
    return model.eval()
