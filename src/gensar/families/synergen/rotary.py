"""Time-aware rotary positional embedding (SynerGen's "time-aware RoPE").

Plain RoPE (Su et al., 2021) rotates each pair ``(x[j], x[j + d/2])`` of a query
or key head vector by the angle ``position * f_j`` with ``f_j = base^(-j/(d/2))``,
so the query-key product depends on the position difference only.

The abstract gives no formula for the time-aware variant; ours (named here, set
by ``positions``/``time_fraction``/``time_unit``/``rope_base``): the head's
``d/2`` frequency pairs are split in two groups. The first
``n_pos = d/2 - n_time`` pairs turn with the token position as in RoPE
(frequencies ``base^(-j/n_pos)``); the last ``n_time = round(time_fraction * d/2)``
pairs turn with the event time ``tau = log1p((t - t_first) / time_unit)``
(frequencies ``base^(-j/n_time)``). The query-key product then depends on both
the position difference and the log-time difference of two events, inside the
attention itself. On a dataset without timestamps ``t`` is the event order, so
``tau`` is a log-scaled order.
"""

from __future__ import annotations

import torch


def split_pairs(head_dim: int, time_fraction: float) -> tuple[int, int]:
    """(position pairs, time pairs) of a head of width ``head_dim``."""
    pairs = head_dim // 2
    n_time = min(pairs, max(0, round(time_fraction * pairs)))
    return pairs - n_time, n_time


def frequencies(count: int, base: float) -> torch.Tensor:
    """``base^(-j/count)`` for j = 0..count-1 (RoPE's geometric frequency ladder)."""
    if count == 0:
        return torch.zeros(0)
    return base ** (-torch.arange(count, dtype=torch.float32) / count)


def rotary_angles(
    positions: torch.Tensor,
    times: torch.Tensor | None,
    head_dim: int,
    *,
    time_fraction: float,
    base: float,
) -> torch.Tensor:
    """[..., head_dim/2] rotation angle of every pair for each token.

    ``positions`` and ``times`` have the same shape ([b, L] or [L]); with
    ``times=None`` (plain RoPE) every pair turns with the position.
    """
    if times is None:
        n_pos, n_time = head_dim // 2, 0
    else:
        n_pos, n_time = split_pairs(head_dim, time_fraction)
    pos = positions.float()[..., None] * frequencies(n_pos, base).to(positions.device)
    if n_time == 0:
        return pos
    tim = times.float()[..., None] * frequencies(n_time, base).to(times.device)
    return torch.cat([pos, tim], dim=-1)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate pairs ``(x[..., j], x[..., j + d/2])`` of ``x`` [b, h, L, d] by ``angles``
    [b, L, d/2] (or [L, d/2]): ``(a, b) -> (a cos - b sin, a sin + b cos)``."""
    half = x.shape[-1] // 2
    if angles.dim() == 2:
        angles = angles[None]
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]  # [b, 1, L, d/2]
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
