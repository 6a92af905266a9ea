"""From a trained RQ-VAE to unique identifiers: argmax codes, Sinkhorn re-assignment, de-duplication.

1. argmax: each level's nearest code (Eq. 3-4).
2. Sinkhorn-Knopp (SPEC 4, as in the authors' code): the items of each colliding
   group are re-assigned on the identifier's last level by an entropic optimal
   transport that spreads them over the codes; up to ``sinkhorn_rounds`` rounds.
   A group's new codes are kept only when they raise the number of distinct
   identifiers, so this step can never increase collisions.
3. De-duplication (TIGER): if collisions are left, one extra code level is
   appended to every identifier of that kind: 0 for the first item (row order)
   of each colliding group and for every non-colliding item, 1, 2, ... for the
   others. Identifiers of one kind then all have the same length and every one
   maps to exactly one item.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from gensar.ids.collisions import collision_groups, collision_rate, occurrence_index
from gensar.ids.config import IndexConfig
from gensar.ids.quantize import ResidualQuantizer


def sinkhorn(cost: Tensor, epsilon: float, iters: int) -> Tensor:
    """Log of the Sinkhorn-Knopp transport plan [B, K] for ``cost`` [B, K] (Cuturi 2013).

    Rows (items) get mass 1/B and columns (codes) 1/K. Computed in the log
    domain: with epsilon = 0.003 and costs in [-1, 1], exp(-cost / epsilon)
    spans e^-333..e^333, where repeated normalisation in linear space can
    underflow a whole column to zero and produce NaN.
    """
    b, k = cost.shape
    log_q = -cost.double() / epsilon
    for _ in range(iters):
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(k)
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(b)
    return log_q


def centred(distances: Tensor) -> Tensor:
    """Distances mapped linearly to [-1, 1] (the authors' ``center_distance_for_constraint``)."""
    high, low = distances.max(), distances.min()
    middle = (high + low) / 2
    return (distances - middle) / (high - middle + 1e-5)


class RoundLog(NamedTuple):
    round: int
    groups: int  #: colliding groups at the start of the round
    accepted: int  #: groups whose re-assignment was kept
    collision_rate: float  #: after the round


def sinkhorn_reassign(
    codes: np.ndarray, residuals: Tensor, quantizer: ResidualQuantizer, config: IndexConfig
) -> tuple[np.ndarray, list[RoundLog]]:
    """Re-assign colliding items on the last column of ``codes`` [N, L].

    ``residuals`` [N, D] are the inputs of the last level and ``quantizer`` its
    codebook. Returns the new codes and one log entry per round.
    """
    codes = codes.copy()
    if codes.shape[1] == 0 or config.sinkhorn_rounds == 0:
        return codes, []
    # Per prefix (all codes but the last): how many items hold each last code.
    holders: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
    for row in codes:
        holders[tuple(row[:-1].tolist())][int(row[-1])] += 1
    k = quantizer.codebook_size
    logs: list[RoundLog] = []
    with torch.no_grad():
        for round_no in range(1, config.sinkhorn_rounds + 1):
            groups = collision_groups(codes)
            if not groups:
                break
            accepted = 0
            for group in groups:
                prefix = tuple(codes[group[0], :-1].tolist())
                held = holders[prefix]
                old = int(codes[group[0], -1])
                allowed = torch.arange(k)
                if config.sinkhorn_free_codes_only:
                    taken = [c for c, n in held.items() if n > 0 and c != old]
                    if taken:
                        mask = torch.ones(k, dtype=torch.bool)
                        mask[taken] = False
                        allowed = allowed[mask]
                if len(allowed) < 2:
                    continue
                dist = quantizer.distances(residuals[group].to(quantizer.codebook.device)).cpu()
                plan = sinkhorn(
                    centred(dist[:, allowed]), config.sinkhorn_epsilon, config.sinkhorn_iters
                )
                new = allowed[plan.argmax(dim=1)].numpy()
                # Distinct identifiers this group ends up holding vs. the one it holds now.
                held[old] -= len(group)
                fresh = {int(c) for c in new if held[int(c)] == 0}
                if len(fresh) > 1:
                    for c in new:
                        held[int(c)] += 1
                    codes[group, -1] = new
                    accepted += 1
                else:
                    held[old] += len(group)
            logs.append(RoundLog(round_no, len(groups), accepted, collision_rate(codes)))
            if accepted == 0:
                break
    return codes, logs


def disambiguate(codes: np.ndarray) -> tuple[np.ndarray, bool]:
    """Append one code level that makes every identifier unique, if any collide (TIGER)."""
    if collision_rate(codes) == 0.0:
        return codes, False
    extra = occurrence_index(codes)
    return np.concatenate([codes, extra[:, None]], axis=1), True


def free_code_dedup(
    codes: np.ndarray, residuals: Tensor, quantizer: ResidualQuantizer
) -> np.ndarray | None:
    """Make identifiers unique by moving each extra member of a colliding group to the
    nearest last-level code that no item with the same prefix holds.

    Unlike an extra level this keeps every identifier at the same, shorter length:
    one near-duplicate pair would otherwise add a token to all N identifiers (and to
    every history entry and decoding step). Returns None when some prefix has no
    free code left (then the caller appends a level).
    """
    codes = codes.copy()
    if codes.shape[1] == 0:
        return None
    held: dict[tuple[int, ...], set[int]] = defaultdict(set)
    for row in codes:
        held[tuple(row[:-1].tolist())].add(int(row[-1]))
    with torch.no_grad():
        for group in collision_groups(codes):
            rest = np.asarray(group[1:])
            dist = quantizer.distances(residuals[rest].to(quantizer.codebook.device)).cpu()
            for row, item in enumerate(rest):
                taken = held[tuple(codes[item, :-1].tolist())]
                order = torch.argsort(dist[row]).tolist()
                free = next((c for c in order if c not in taken), None)
                if free is None:
                    return None
                codes[item, -1] = free
                taken.add(free)
    return codes


class IdentifierSteps(NamedTuple):
    """One identifier kind through the three steps."""

    argmax: np.ndarray  #: [N, L]
    sinkhorn: np.ndarray  #: [N, L]
    final: np.ndarray  #: [N, L] or [N, L + 1] with the disambiguation code
    disambiguated: bool
    rounds: list[RoundLog]

    def rates(self) -> dict[str, float]:
        return {
            "argmax": collision_rate(self.argmax),
            "sinkhorn": collision_rate(self.sinkhorn),
            "final": collision_rate(self.final),
        }


def assign_identifier(
    codes: np.ndarray, residuals: Tensor, quantizer: ResidualQuantizer, config: IndexConfig
) -> IdentifierSteps:
    """Steps 2 and 3 for one identifier kind, from its argmax codes."""
    after, rounds = sinkhorn_reassign(codes, residuals, quantizer, config)
    moved = free_code_dedup(after, residuals, quantizer) if config.dedup == "free_code" else None
    final, added = (moved, False) if moved is not None else disambiguate(after)
    return IdentifierSteps(codes, after, final, added, rounds)
