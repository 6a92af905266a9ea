"""The SynerGen network: event tokens, a causal decoder with (time-aware) rotary
attention, a retrieval head and a ranking head.

Token of an item event (type REC or SEARCH): ``E_id[item] + P s(item) + E_type[type]``;
token of a query event: ``P_q s(query) + E_type[QUERY]`` where ``s`` is the
MiniLM vector of the text and ``P``/``P_q`` linear maps to ``hidden`` (one map
with ``share_text_projection``). An item's *output* vector, scored by both heads,
is the same ``E_id[item] + P s(item)`` (tied input/output, as in SASRec).

Retrieval head: ``u = W_r h`` and ``score(item) = u . e_item / temperature``
against the whole catalogue (an exact top-k is one matrix product + topk).
Ranking head: a separate scorer of (state, item) pairs (``ranking_head``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gensar.families.synergen.config import SynerGenConfig
from gensar.families.synergen.data import QUERY, TokenBatch
from gensar.families.synergen.rotary import apply_rotary, rotary_angles


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with rotary queries and keys."""

    def __init__(self, config: SynerGenConfig):
        super().__init__()
        self.heads = config.heads
        self.head_dim = config.hidden // config.heads
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, angles: torch.Tensor | None) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if angles is not None:
            q, k = apply_rotary(q, angles), apply_rotary(k, angles)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        return self.out(y.transpose(1, 2).reshape(b, length, d))


class Block(nn.Module):
    """Pre-LayerNorm decoder block: causal attention, then a GELU feed-forward."""

    def __init__(self, config: SynerGenConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden)
        self.attn = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden)
        self.ff = nn.Sequential(
            nn.Linear(config.hidden, config.ff_mult * config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.ff_mult * config.hidden, config.hidden),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, angles: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), angles))
        return x + self.drop(self.ff(self.norm2(x)))


class SynerGen(nn.Module):
    """Decoder-only backbone over event tokens with the two heads."""

    def __init__(
        self,
        config: SynerGenConfig,
        item_text: torch.Tensor,
        query_text: torch.Tensor,
    ):
        super().__init__()
        self.config = config
        d = config.hidden
        self.n_items = item_text.shape[0]
        # The MiniLM vectors are fixed inputs, kept as buffers so model.safetensors is
        # self-contained (no embedding files needed at load time).
        self.register_buffer("item_text", item_text.float(), persistent=True)
        self.register_buffer("query_text", query_text.float(), persistent=True)
        text_dim = item_text.shape[1]
        self.item_id = nn.Embedding(self.n_items, d)
        self.type_emb = nn.Embedding(3, d)
        if config.semantic:
            self.item_proj = nn.Linear(text_dim, d, bias=False)
            if not config.share_text_projection:
                self.query_proj = nn.Linear(text_dim, d, bias=False)
        else:
            self.query_id = nn.Embedding(max(1, query_text.shape[0]), d)
        if config.positions == "learned":
            self.pos_emb = nn.Embedding(config.max_len, d)
        self.emb_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(d)
        self.retrieval = nn.Linear(d, d)
        if config.ranking_head == "mlp":
            self.rank_mlp = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 1))
        else:
            self.rank_bilinear = nn.Linear(d, d, bias=False)
        self._init()

    def _init(self) -> None:
        std = self.config.hidden**-0.5
        nn.init.normal_(self.item_id.weight, std=std)
        nn.init.normal_(self.type_emb.weight, std=std)

    # ------------------------------------------------------------------ tokens
    def item_vectors(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``E_id + P s`` of the items ``rows`` (all items when None)."""
        ids = self.item_id.weight
        full = ids + self.item_proj(self.item_text) if self.config.semantic else ids
        # projecting the whole catalogue once is cheaper than projecting repeated rows
        return full if rows is None else full[rows]

    def query_vectors(self, rows: torch.Tensor) -> torch.Tensor:
        if self.config.semantic:
            proj = self.item_proj if self.config.share_text_projection else self.query_proj
            return proj(self.query_text[rows])
        return self.query_id(rows)

    def text_projection(self, vectors: torch.Tensor) -> torch.Tensor:
        """[n, hidden] query-token vectors of raw MiniLM text vectors [n, text_dim]."""
        proj = self.item_proj if self.config.share_text_projection else self.query_proj
        return proj(vectors)

    def embed(self, batch: TokenBatch, table: torch.Tensor | None = None) -> torch.Tensor:
        """Input vectors [b, L, d]; ``table`` is ``item_vectors()`` when already computed."""
        is_query = batch.kinds == QUERY
        item_rows = torch.where(is_query, 0, batch.ids).clamp(max=self.n_items - 1)
        query_rows = torch.where(is_query, batch.ids, 0)
        items = self.item_vectors(item_rows) if table is None else table[item_rows]
        queries = self.query_vectors(query_rows)
        vectors = torch.where(is_query[..., None], queries, items)
        return self._token_inputs(batch.kinds, vectors)

    def _token_inputs(self, kinds: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Item/query vectors [b, L, d] + type embeddings (+ learned positions)."""
        x = vectors + self.type_emb(kinds)
        if self.config.positions == "learned":
            pos = torch.arange(x.shape[1], device=x.device).clamp(max=self.config.max_len - 1)
            x = x + self.pos_emb(pos)[None]
        return x

    def angles(self, batch: TokenBatch) -> torch.Tensor | None:
        return self._angles(batch.kinds, batch.times)

    def _angles(self, kinds: torch.Tensor, times: torch.Tensor) -> torch.Tensor | None:
        if self.config.positions == "learned":
            return None
        positions = torch.arange(kinds.shape[1], device=kinds.device)[None].expand(
            kinds.shape[0], -1
        )
        return rotary_angles(
            positions,
            times if self.config.positions == "time" else None,
            self.config.hidden // self.config.heads,
            time_fraction=self.config.time_fraction,
            base=self.config.rope_base,
        )

    # ------------------------------------------------------------------ backbone
    def forward(self, batch: TokenBatch, table: torch.Tensor | None = None) -> torch.Tensor:
        """[b, L, hidden] states; the state at position p has seen tokens 0..p only.

        ``table``: the step's ``item_vectors()``, so training projects the catalogue's
        text vectors once per step for the inputs and both heads."""
        return self._run(self.embed(batch, table), self.angles(batch))

    def _run(self, x: torch.Tensor, angles: torch.Tensor | None) -> torch.Tensor:
        x = self.emb_drop(x)
        for block in self.blocks:
            x = block(x, angles)
        return self.norm(x)

    def state_from_vectors(
        self, kinds: torch.Tensor, vectors: torch.Tensor, times: torch.Tensor
    ) -> torch.Tensor:
        """[hidden] state after the last of one sequence's tokens, given their types [L],
        item/query input vectors [L, hidden] and log-scaled times [L] (serving: a new
        query text has a vector but no stored row)."""
        x = self._token_inputs(kinds[None], vectors[None])
        return self._run(x, self._angles(kinds[None], times[None]))[0, -1]

    def last_states(self, batch: TokenBatch) -> torch.Tensor:
        """[b, hidden]: the state at each sequence's last real token (zeros when empty)."""
        states = self(batch)
        last = (batch.lengths - 1).clamp(min=0)
        out = states[torch.arange(states.shape[0], device=states.device), last]
        return out * (batch.lengths > 0)[:, None]

    # ------------------------------------------------------------------ heads
    def retrieval_queries(self, states: torch.Tensor) -> torch.Tensor:
        return self.retrieval(states)

    def retrieval_scores(
        self, states: torch.Tensor, items: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[n, n_items] retrieval logits (or [n, c] for item rows ``items`` [n, c])."""
        u = self.retrieval_queries(states) / self.config.temperature
        if items is None:
            return u @ self.item_vectors().T
        return torch.einsum("nd,ncd->nc", u, self.item_vectors(items))

    def ranking_scores(
        self, states: torch.Tensor, items: torch.Tensor, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[n, c] ranking-head scores of item rows ``items`` [n, c] for states [n, d]."""
        e = self.item_vectors(items) if table is None else table[items]
        h = states[:, None].expand_as(e)
        if self.config.ranking_head == "mlp":
            return self.rank_mlp(torch.cat([h, e, h * e], dim=-1)).squeeze(-1)
        return (self.rank_bilinear(h) * e).sum(-1)
