"""Collision and codebook-usage statistics of identifier code matrices (paper 4.4.2).

An identifier matrix is an int array [n_items, n_levels]; two items collide when
their rows are equal.
"""

from __future__ import annotations

import numpy as np


def unique_count(codes: np.ndarray) -> int:
    """Number of distinct identifiers (rows)."""
    if codes.shape[0] == 0:
        return 0
    if codes.shape[1] == 0:
        return 1
    return int(np.unique(codes, axis=0).shape[0])


def collision_rate(codes: np.ndarray) -> float:
    """1 - #unique identifiers / #items (paper 4.4.2)."""
    n = codes.shape[0]
    return 0.0 if n == 0 else 1.0 - unique_count(codes) / n


def collision_groups(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of each identifier held by more than one item.

    Groups come in order of their first item, and items inside a group in row
    order, so everything that iterates over them is deterministic.
    """
    if codes.shape[0] == 0:
        return []
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    dup = counts[inverse] > 1
    if not dup.any():
        return []
    rows = np.nonzero(dup)[0]
    order = np.argsort(inverse[rows], kind="stable")
    rows = rows[order]
    _, starts = np.unique(inverse[rows], return_index=True)
    groups = np.split(rows, starts[1:])
    groups.sort(key=lambda g: int(g[0]))
    return groups


def occurrence_index(codes: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows hold the same identifier (0 for the first)."""
    n = codes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")  # rows grouped by identifier, row order kept
    sorted_ids = inverse[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_ids))[0] + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) - group_start
    return out


def level_usage(column: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Codes used out of K, their share, and the perplexity exp(H) of the code distribution."""
    counts = np.bincount(column.astype(np.int64), minlength=codebook_size).astype(np.float64)
    used = int((counts > 0).sum())
    total = counts.sum()
    if total == 0:
        return {"used": 0, "of": codebook_size, "usage": 0.0, "perplexity": 0.0}
    p = counts[counts > 0] / total
    return {
        "used": used,
        "of": codebook_size,
        "usage": used / codebook_size,
        "perplexity": float(np.exp(-(p * np.log(p)).sum())),
    }
