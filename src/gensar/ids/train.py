"""Training the RQ-VAE (paper Eq. 10; SPEC 4 for the authors' optimiser and checkpoint rule).

The whole loop is here, in one function: AdamW with linear warm-up (then linear
decay), k-means initialisation of every codebook on the first batch, dead-code
resets at epoch ends, and every ``check_every`` epochs a check over the
catalogue (losses and collision rates) whose weights are kept; at the end
:func:`select_checkpoint` picks one of them.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from gensar.ids.collisions import collision_rate
from gensar.ids.config import IndexConfig
from gensar.ids.rqvae import COLLABORATIVE, SEMANTIC, JointRQVAE
from gensar.utils import pick_device, seed_everything, torch_threads


class TrainResult(NamedTuple):
    model: JointRQVAE  #: the chosen checkpoint, in eval mode, on the CPU
    history: list[dict]  #: one record per collision check
    best_epoch: int
    seconds: float


def identifier_collisions(model: JointRQVAE, codes: np.ndarray) -> dict[str, float]:
    """Argmax collision rate of each identifier from a [N, n_levels] code matrix."""
    columns = {name: j for j, name in enumerate(model.level_names)}
    return {
        kind: collision_rate(codes[:, [columns[n] for n in names]])
        for kind, names in model.identifier_levels().items()
    }


@torch.no_grad()
def evaluate(model: JointRQVAE, inputs: dict[str, Tensor]) -> dict[str, float]:
    """Full-catalogue losses and argmax collision rates, in eval mode."""
    was_training = model.training
    model.eval()
    out = model(inputs)
    model.train(was_training)
    rates = identifier_collisions(model, out.encoded.codes.cpu().numpy())
    return {
        "loss": float(out.loss),
        "recon_semantic": float(out.recon_semantic),
        "recon_collaborative": float(out.recon_collaborative),
        "quant_loss": float(out.quant_loss),
        "collision_semantic": rates[SEMANTIC],
        "collision_collaborative": rates[COLLABORATIVE],
        "collision_mean": (rates[SEMANTIC] + rates[COLLABORATIVE]) / 2,
    }


def recon_loss(record: dict) -> float:
    """The reconstruction part of Eq. (10) in a check record (both towers)."""
    return record["recon_semantic"] + record["recon_collaborative"]


def select_checkpoint(history: list[dict], rule: str, tolerance: float = 0.05) -> int:
    """Index into ``history`` (one record per check) of the weights to keep.

    'converged': only checks whose reconstruction loss is at most (1 + tolerance)
    times the best one seen are eligible; among them, the fewest collisions
    (ties: lower reconstruction). An early, untrained check has a far higher
    reconstruction loss, so it can never win on its (often lower) collision rate.
    'collisions': the authors' rule, the fewest collisions over every check.
    'last': the final check.
    """
    if not history:
        raise ValueError("no checks to select from")
    if rule == "last":
        return len(history) - 1
    candidates = range(len(history))
    if rule == "converged":
        best = min(recon_loss(r) for r in history)
        limit = best * (1.0 + tolerance) + 1e-12
        candidates = [i for i in candidates if recon_loss(history[i]) <= limit]
    elif rule != "collisions":
        raise ValueError(f"unknown checkpoint rule {rule!r}")
    return min(candidates, key=lambda i: (history[i]["collision_mean"], recon_loss(history[i])))


def _schedule(config: IndexConfig, total_steps: int):
    warmup = int(config.warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup  # linear warm-up
        if config.lr_decay == "constant":
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def train_rqvae(
    inputs: dict[str, Tensor], config: IndexConfig, *, progress: bool = True
) -> TrainResult:
    """Train the variant of ``config`` on ``inputs`` (tower name -> [N, dim] float32)."""
    with torch_threads(config.threads):
        return _train(inputs, config, progress)


def _train(inputs: dict[str, Tensor], config: IndexConfig, progress: bool) -> TrainResult:
    start = time.perf_counter()
    device = pick_device(config.device)
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = JointRQVAE(
        config,
        semantic_dim=int(inputs[SEMANTIC].shape[1]) if SEMANTIC in inputs else 0,
        collaborative_dim=int(inputs[COLLABORATIVE].shape[1]) if COLLABORATIVE in inputs else 0,
    )
    data = {t: inputs[t].float().to(device) for t in model.towers}
    if config.normalize_inputs:
        model.fit_input_stats(data)
    model.to(device)
    n = next(iter(data.values())).shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total_steps))
    k = config.codebook_size

    def init_kmeans(quantizer, residual: Tensor) -> None:
        quantizer.init_kmeans(residual, config.kmeans_iters, generator)

    history: list[dict] = []
    states: list[dict[str, Tensor]] = []  # CPU copy of the weights at each check
    bar = tqdm(range(1, config.epochs + 1), desc="rq-vae", unit="epoch", disable=not progress)
    for epoch in bar:
        order = torch.randperm(n, generator=generator).to(device)
        usage = torch.zeros(len(model.levels), k, dtype=torch.long, device=device)
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            first = epoch == 1 and step == 0
            out = model({t: data[t][idx] for t in model.towers}, init_kmeans if first else None)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            scheduler.step()
            for j in range(len(model.levels)):
                usage[j] += torch.bincount(out.encoded.codes[:, j], minlength=k)
        if config.dead_code_reset and bool((usage == 0).any()):
            sample = {t: data[t][order[: config.batch_size]] for t in model.towers}
            for j, spec in enumerate(model.levels):
                dead = torch.nonzero(usage[j] == 0).flatten()
                if len(dead):
                    # Residuals recomputed per level: a reset upstream changes those downstream.
                    residual = model.encode_all(sample).level_inputs[j]
                    model.quantizers[spec.name].reset_codes(dead, residual, generator)
        if epoch % config.check_every == 0 or epoch == config.epochs:
            record = {"epoch": epoch, **evaluate(model, data)}
            history.append(record)
            states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            bar.set_postfix(
                loss=f"{record['loss']:.4f}",
                coll_s=f"{record['collision_semantic']:.4f}",
                coll_c=f"{record['collision_collaborative']:.4f}",
            )
    chosen = select_checkpoint(history, config.checkpoint, config.recon_tolerance)
    model.to("cpu")
    model.load_state_dict(states[chosen])
    model.eval()
    return TrainResult(model, history, int(history[chosen]["epoch"]), time.perf_counter() - start)
