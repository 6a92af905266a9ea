"""Prefix tries over item identifiers, stored as flat tensors for vectorised lookups.

An identifier is a fixed-length sequence of code-token ids (the behaviour token
and EOS are not part of it). Decoding walks the trie level by level: at depth
``d`` every beam sits on a node, and the valid next tokens are that node's
children. A Python dict walk per beam per step costs more than the decoder step
itself on a small model, so the trie is laid out for tensor indexing instead:

* nodes of one depth are numbered in lexicographic order of their prefixes, so
  the children of a node are a *contiguous run* of the next depth's nodes;
* ``offsets[d][n] : offsets[d][n + 1]`` is that run for node ``n`` of depth
  ``d`` and ``tokens[d][c]`` the token that leads to child ``c``;
* ``items[leaf]`` is the item index of a complete identifier.

A trie may hold several *groups*, each with its own root at depth 0. A full
catalogue is one group; the candidate-restricted tries of the paper's
protocol (beam search limited to the 100 candidates of one test case) are one
group per input of a batch, built together with one sort.

Building is a lexicographic sort plus a few vectorised passes (no per-item
Python loop), so a restricted trie for 100 candidates costs well under a
millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from gensar.errors import GensarError


class Children(NamedTuple):
    """The children of a batch of nodes, padded to the widest node.

    All tensors have the nodes' shape plus one trailing axis of size ``width``.
    """

    tokens: torch.Tensor  # token id leading to each child (0 where padded)
    nodes: torch.Tensor  # child node ids at depth + 1 (0 where padded)
    valid: torch.Tensor  # False on padding


class IdentifierTrie:
    """Tries of equal-length identifiers, one root per group (see the module docstring)."""

    def __init__(
        self,
        offsets: list[torch.Tensor],
        tokens: list[torch.Tensor],
        items: torch.Tensor,
    ):
        if len(offsets) != len(tokens) or not offsets:
            raise ValueError("offsets and tokens must have one entry per depth")
        self.offsets = offsets
        self.tokens = tokens
        self.items = items

    @property
    def depth(self) -> int:
        """Number of code tokens in every identifier."""
        return len(self.offsets)

    @property
    def num_groups(self) -> int:
        return int(self.offsets[0].numel()) - 1

    @property
    def num_items(self) -> int:
        return int(self.items.numel())

    @property
    def device(self) -> torch.device:
        return self.items.device

    def to(self, device: torch.device | str) -> IdentifierTrie:
        """This trie with its tables on ``device`` (self when already there)."""
        device = torch.device(device)
        if self.items.device == device:
            return self
        return IdentifierTrie(
            [o.to(device) for o in self.offsets],
            [t.to(device) for t in self.tokens],
            self.items.to(device),
        )

    def group_sizes(self) -> torch.Tensor:
        """Number of identifiers under each root, shape ``(num_groups,)``."""
        counts = torch.ones(self.num_items, dtype=torch.long, device=self.device)
        for depth in reversed(range(self.depth)):
            offsets = self.offsets[depth]
            cumulative = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
            counts = cumulative[offsets[1:]] - cumulative[offsets[:-1]]
        return counts

    def children(self, depth: int, nodes: torch.Tensor) -> Children:
        """Children of ``nodes`` (node ids at ``depth``, any shape) as padded tensors."""
        offsets = self.offsets[depth]
        start = offsets[nodes]
        count = offsets[nodes + 1] - start
        width = int(count.max()) if count.numel() else 0
        steps = torch.arange(width, device=nodes.device)
        valid = steps < count.unsqueeze(-1)
        child = torch.where(valid, start.unsqueeze(-1) + steps, 0)
        table = self.tokens[depth]
        tokens = table[child] if table.numel() else torch.zeros_like(child)
        return Children(tokens, child, valid)

    def identifiers(self) -> torch.Tensor:
        """All identifiers, one row per leaf (leaf order), shape ``(num_items, depth)``."""
        columns = []
        node = torch.arange(self.num_items, device=self.device)
        for depth in reversed(range(self.depth)):
            columns.append(self.tokens[depth][node])
            node = torch.searchsorted(self.offsets[depth], node, right=True) - 1
        return torch.stack(columns[::-1], dim=1)

    def leaf_groups(self) -> torch.Tensor:
        """The group (root) of every leaf, shape ``(num_items,)``."""
        node = torch.arange(self.num_items, device=self.device)
        for depth in reversed(range(self.depth)):
            node = torch.searchsorted(self.offsets[depth], node, right=True) - 1
        return node


def build_trie(
    codes: np.ndarray,
    items: np.ndarray,
    groups: np.ndarray | None = None,
    num_groups: int | None = None,
    *,
    where: str = "identifiers",
) -> IdentifierTrie:
    """Build a trie from ``codes`` (N, L) with the item index of each row.

    ``groups`` (N,) assigns each row to a root (default: all in group 0);
    ``num_groups`` lets trailing groups be empty. An identifier may appear only
    once per group: a repeat means two items cannot be told apart, which
    the identifier stage must have resolved.
    """
    codes = np.asarray(codes, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise GensarError(
            f"{where}: expected a (items, length) array of code ids, got shape {codes.shape}"
        )
    n, length = codes.shape
    if groups is None:
        groups = np.zeros(n, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    if num_groups is None:
        num_groups = int(groups.max()) + 1 if n else 1
    keys = np.concatenate([groups[:, None], codes], axis=1)
    # np.lexsort sorts by its last key first, so pass the columns reversed.
    order = np.lexsort(keys.T[::-1])
    keys = keys[order]
    # starts[:, d]: row i begins a new prefix of length d+1 (group counts as position 0).
    starts = np.ones_like(keys, dtype=bool)
    if n > 1:
        starts[1:] = np.logical_or.accumulate(keys[1:] != keys[:-1], axis=1)
    if not starts[:, -1].all():
        row = int(np.flatnonzero(~starts[:, -1])[0])
        clash = items[order[row - 1 : row + 1]].tolist()
        raise GensarError(
            f"{where}: items {clash[0]} and {clash[1]} have the same identifier {keys[row, 1:].tolist()}",
            fix="make every identifier unique (the identifier stage's de-duplication)",
        )
    # node id at depth d for every sorted row: depth 0 is the group itself.
    node_of_row = [keys[:, 0]]
    for d in range(1, length + 1):
        node_of_row.append(np.cumsum(starts[:, d]) - 1)
    offsets, tokens = [], []
    for d in range(length):
        first_rows = np.flatnonzero(starts[:, d + 1])
        parents = node_of_row[d][first_rows]
        n_parents = num_groups if d == 0 else int(node_of_row[d][-1]) + 1 if n else 0
        offsets.append(np.searchsorted(parents, np.arange(n_parents + 1), side="left"))
        tokens.append(keys[first_rows, d + 1])
    leaf_items = items[order][starts[:, -1]]
    return IdentifierTrie(
        [torch.from_numpy(np.ascontiguousarray(o, dtype=np.int64)) for o in offsets],
        [torch.from_numpy(np.ascontiguousarray(t, dtype=np.int64)) for t in tokens],
        torch.from_numpy(np.ascontiguousarray(leaf_items, dtype=np.int64)),
    )


class IdentifierCatalogue:
    """The valid identifiers of one kind (semantic or collaborative) and their items.

    ``behaviour_token`` is forced as the first generated token (``<S_I>`` or
    ``<R_I>``); ``codes`` holds one identifier per row, code tokens only;
    ``items`` the item index of each row (default: the row number).
    """

    def __init__(
        self,
        behaviour_token: int | None,
        codes: Sequence[Sequence[int]] | np.ndarray | torch.Tensor,
        items: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        *,
        name: str = "identifiers",
    ):
        self.name = name
        # None: the model was trained without behaviour tokens (the ablation of paper
        # Table 5); decoding then starts with the first code right after decoder_start.
        self.behaviour_token = None if behaviour_token is None else int(behaviour_token)
        self.codes = _as_code_matrix(codes, name)
        n = self.codes.shape[0]
        self.items = (
            np.arange(n, dtype=np.int64) if items is None else np.asarray(items, dtype=np.int64)
        )
        if self.items.shape != (n,):
            raise GensarError(f"{name}: {self.items.shape[0]} item indices for {n} identifiers")
        if (self.items < 0).any():
            raise GensarError(f"{name}: item indices must be non-negative")
        if len(np.unique(self.items)) != n:
            raise GensarError(
                f"{name}: an item index appears twice", fix="give each item one identifier"
            )
        self.row_of = np.full(int(self.items.max()) + 1, -1, dtype=np.int64)
        self.row_of[self.items] = np.arange(n)
        self.trie = build_trie(self.codes, self.items, where=name)
        self.code_tokens = np.unique(self.codes)

    @property
    def length(self) -> int:
        """Code tokens per identifier."""
        return int(self.codes.shape[1])

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def check_special_tokens(self, *special: int | None) -> None:
        """Fail if a special token (EOS, pad, start, the behaviour token) is also a code token."""
        clash = [t for t in special if t is not None and t in self.code_tokens]
        if self.behaviour_token is not None and self.behaviour_token in self.code_tokens:
            clash.append(self.behaviour_token)
        if clash:
            raise GensarError(
                f"{self.name}: token ids {sorted(set(clash))} are both special tokens and code tokens",
                fix="give identifier codes their own token ids",
            )

    def rows(self, items: np.ndarray) -> np.ndarray:
        """Row of each item index; a GensarError names the first unknown item."""
        items = np.asarray(items, dtype=np.int64)
        known = (items >= 0) & (items < len(self.row_of))
        rows = np.where(known, self.row_of[np.where(known, items, 0)], -1)
        if (rows < 0).any():
            bad = int(items[np.flatnonzero(rows < 0)[0]])
            raise GensarError(f"{self.name}: item {bad} has no identifier in this catalogue")
        return rows

    def restricted_trie(self, candidates: Sequence[Sequence[int]]) -> IdentifierTrie:
        """One group per candidate list: beam search limited to each input's candidates.

        A candidate listed twice in one list is kept once.
        """
        sizes = [len(c) for c in candidates]
        flat = np.fromiter((i for c in candidates for i in c), dtype=np.int64, count=sum(sizes))
        groups = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        rows = self.rows(flat)
        pairs = np.unique(np.stack([groups, rows], axis=1), axis=0)
        return build_trie(
            self.codes[pairs[:, 1]],
            self.items[pairs[:, 1]],
            pairs[:, 0],
            num_groups=len(sizes),
            where=self.name,
        )


def _as_code_matrix(codes: object, name: str) -> np.ndarray:
    if isinstance(codes, torch.Tensor):
        codes = codes.cpu().numpy()
    if isinstance(codes, np.ndarray):
        matrix = codes
    else:
        rows = [list(r) for r in codes]  # type: ignore[union-attr]
        lengths = {len(r) for r in rows}
        if len(lengths) > 1:
            raise GensarError(
                f"{name}: identifiers have different lengths {sorted(lengths)}",
                fix="give every identifier of one kind the same number of codes",
            )
        matrix = np.asarray(rows, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise GensarError(f"{name}: need at least one identifier of at least one code")
    if not np.issubdtype(matrix.dtype, np.integer):
        raise GensarError(f"{name}: code token ids must be integers")
    if (matrix < 0).any():
        raise GensarError(f"{name}: code token ids must be non-negative")
    return matrix.astype(np.int64, copy=False)
